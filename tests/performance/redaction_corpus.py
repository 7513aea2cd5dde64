"""Corpora for the redaction benchmarks, generated at run time from the pack's own
sample templates (fresh made-up values per envelope) plus look-alikes that are not
secrets."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tomllib
import uuid
from pathlib import Path

from sandbox.redact.pack import FAMILIES, PACK_DIR
from sandbox.redact.samples import expand

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from secret_samples import BENIGN  # noqa: E402

ENVELOPES = {
    "raw": lambda line: line,
    "log": lambda line: f"2026-11-24T02:00:00.123Z INFO  deploy[812]: {line}",
    "json": lambda line: json.dumps({"ts": "2026-11-24T02:00:00Z", "level": "debug", "msg": line}),
}


def positive_cases() -> list[dict]:
    """One case per (rule, true-positive template, envelope): text, secret as it appears."""
    cases = []
    for family in FAMILIES:
        doc = tomllib.loads((PACK_DIR / f"{family}.toml").read_text())
        for rule in doc.get("rule", []):
            for i, template in enumerate(rule.get("tp", [])):
                for env, wrap in ENVELOPES.items():
                    s = expand(template, f"bench:{rule['id']}:{i}:{env}")
                    if not s.secret:
                        continue
                    secret = json.dumps(s.secret)[1:-1] if env == "json" else s.secret
                    cases.append({"rule": rule["id"], "family": family, "envelope": env,
                                  "text": wrap(s.text), "secret": secret})
    return cases


def benign_cases(seed: int = 7) -> list[str]:
    """Placeholders, ids, digests, versions, package files and keyword prose."""
    rnd = random.Random(seed)
    out = list(BENIGN)
    for i in range(40):
        h = hashlib.sha1(f"c{i}".encode()).hexdigest()
        d = hashlib.sha256(f"d{i}".encode()).hexdigest()
        u = uuid.UUID(int=rnd.getrandbits(128), version=4)
        v = f"{rnd.randrange(1, 30)}.{rnd.randrange(0, 40)}.{rnd.randrange(0, 200)}"
        out += [
            f"commit {h} Merge pull request #{rnd.randrange(9999)}",
            f"image registry.example.com/app@sha256:{d}",
            f"request_id={u} status=200 duration_ms={rnd.randrange(900)}",
            f"Successfully built keyring-{v}-py3-none-any.whl tokenizers-{v}.tar.gz",
            f"sha256sum: {d}  secret-handshake-{v}.tgz",
            f"token_count={rnd.randrange(4096)} max_tokens={rnd.choice([256, 512, 1024])} token_type=bearer",
        ]
    return out
