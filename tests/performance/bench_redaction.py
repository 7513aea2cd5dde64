"""Redaction throughput with the full built-in pack, three ways over the same bytes:
cleanroom's streaming redactor, a raw hyperscan block scan of the very database the
redactor compiled (the ceiling: matching only, no confirmation, no output), and stdlib
`re` (one alternation of the same patterns; on a slice, it is slow).

≥ 100 MB of realistic log text (about 0.1 % of lines carry a secret drawn from the
pack's own formats), fed in 64 KiB chunks. Prints MB/s, the ratios (target: cleanroom
≥ 50 % of raw hyperscan) and the stream's RSS growth (target < 50 MB). Asserts nothing
about timing.
"""

from __future__ import annotations

import os
import random
import re
import time

import psutil
from redaction_corpus import positive_cases

from sandbox.redact import BUILTIN_RULES, Redactor
from sandbox.redact.hsdb import hyperscan

SIZE_MB = int(os.environ.get("CLEANROOM_BENCH_MB", "100"))
RE_SLICE_MB = int(os.environ.get("CLEANROOM_BENCH_RE_MB", "1"))
CHUNK = 64 * 1024

BENIGN = [
    "{ts} INFO  http  GET /api/v1/users/{n} 200 {ms}ms user-agent=curl/8.1 request_id={u}",
    "{ts} DEBUG db    SELECT id, name FROM users WHERE id = {n} ({ms} ms)",
    "{ts} WARN  cache miss for key user:{n}, refetching",
    "{ts} INFO  worker-{w} processed batch {n} in {ms}ms",
    "{ts} ERROR retry {w}/5 for job {n}: connection reset by peer",
    "{ts} INFO  auth  token refreshed for session {u} (expires in 3600s)",
    "{ts} DEBUG build step {w}/9: pip install keyring==24.3.{w} tokenizers==0.15.{w}",
    "{ts} INFO  git   checkout {h} (HEAD detached)",
    '{{"ts": "{ts}", "level": "info", "msg": "order {n} paid", "amount_cents": {ms}, "currency": "EUR"}}',
    "{ts} INFO  k8s   pod api-{w}-7d9f8c6b5-x2x4z Running ready=1/1 restarts=0",
]


def make_corpus(size: int) -> list[str]:
    rnd = random.Random(42)
    secrets = [c["text"] for c in positive_cases() if "\n" not in c["text"]]
    chunks, buf, buf_len, total = [], [], 0, 0
    while total < size:
        if rnd.random() < 0.001:
            line = rnd.choice(secrets)
        else:
            line = rnd.choice(BENIGN).format(
                ts=f"2026-11-24T02:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z", n=rnd.randrange(10**6),
                ms=rnd.randrange(500), w=rnd.randrange(8), u=f"{rnd.getrandbits(128):032x}",
                h=f"{rnd.getrandbits(160):040x}")
        buf.append(line + "\n")
        buf_len += len(line) + 1
        total += len(line) + 1
        if buf_len >= CHUNK:
            chunks.append("".join(buf))
            buf, buf_len = [], 0
    if buf:
        chunks.append("".join(buf))
    return chunks


def test_redaction_throughput_full_pack():
    corpus = make_corpus(SIZE_MB * 1_000_000)
    total = sum(len(c) for c in corpus)
    mb = total / 1e6
    proc = psutil.Process()

    redactor = Redactor()
    stream = redactor.stream()
    stream.feed("warm-up line\n")
    rss0 = proc.memory_info().rss
    t = time.perf_counter()
    out_len = 0
    for chunk in corpus:
        out_len += len(stream.feed(chunk))
    out_len += len(stream.close())
    ours = time.perf_counter() - t
    rss_growth = (proc.memory_info().rss - rss0) / 1e6

    raw = None
    db = redactor._builtin.db
    if hyperscan is not None and db is not None:
        blobs = [c.encode() for c in corpus]
        scratch = hyperscan.Scratch(db)
        hits = [0]

        def on_match(*_args):
            hits[0] += 1

        t = time.perf_counter()
        for blob in blobs:
            db.scan(blob, match_event_handler=on_match, scratch=scratch)
        raw = time.perf_counter() - t

    alternation = re.compile("|".join(
        "(?:" + r.pattern.replace("(?P<s>", "(").replace("(?P<k>", "(") + ")" for r in BUILTIN_RULES))
    slice_chunks = corpus[: max(1, RE_SLICE_MB * 1_000_000 // CHUNK)]
    slice_mb = sum(len(c) for c in slice_chunks) / 1e6
    t = time.perf_counter()
    for chunk in slice_chunks:
        alternation.sub("[REDACTED]", chunk)
    stdlib = time.perf_counter() - t

    print(f"\nredaction throughput, {mb:.0f} MB of log text, {len(BUILTIN_RULES)} built-in rules:")
    print(f"  cleanroom stream (prefilter + exact confirm + gates): {mb / ours:8.1f} MB/s")
    if raw is not None:
        print(f"  raw hyperscan block scan, same database, same bytes : {mb / raw:8.1f} MB/s")
        print(f"  cleanroom / raw hyperscan: {raw / ours:.0%}  (target >= 50%)")
    print(f"  stdlib re, one alternation, re.sub ({slice_mb:.0f} MB slice)  : {slice_mb / stdlib:8.2f} MB/s")
    print(f"  cleanroom / stdlib re: {(mb / ours) / (slice_mb / stdlib):.0f}x")
    print(f"  RSS growth during the stream: {rss_growth:.1f} MB (target < 50 MB)")
    print(f"  masked: {sum(redactor.counts().values())} spans in {len(redactor.counts())} rules")
    assert out_len > 0
