"""Redaction quality side by side: cleanroom, detect-secrets and Kingfisher on the same
generated corpus (every built-in format in three envelopes, a third of them written to
cleanroom's stream in pieces split inside the secret) and the same benign look-alikes.

Scanners are scored per file (one case per file): a positive case counts when the tool
reports a finding in its file; cleanroom's when the secret is gone from its output. A
benign case is a false positive when the tool reports anything (cleanroom: changes it).
Both scanners run offline, in a namespace without network (`unshare -rn`), with their
network features off: detect-secrets `--no-verify`, Kingfisher `--no-validate
--no-update-check`. Prints one table; asserts nothing about who wins.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from redaction_corpus import benign_cases, positive_cases

from sandbox.redact import Redactor

OFFLINE = ["unshare", "-rn"] if shutil.which("unshare") else []


def _write(root: Path, cases: list[str]) -> list[Path]:
    root.mkdir(parents=True)
    paths = []
    for i, text in enumerate(cases):
        p = root / f"case{i:05d}.log"
        p.write_text(text + "\n")
        paths.append(p)
    return paths


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(OFFLINE + cmd, capture_output=True, text=True, timeout=900, cwd=cwd,
                          env=dict(os.environ, NO_COLOR="1"))


def detect_secrets_flagged(root: Path) -> set[str]:
    exe = shutil.which("detect-secrets")
    if exe is None:
        pytest.skip("detect-secrets is not installed (pip install detect-secrets)")
    # From inside the folder: run from a git checkout, it reports nothing outside it.
    proc = _run([exe, "scan", "--all-files", "--no-verify", "."], cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    return {Path(name).name for name, found in results.items() if found}


def kingfisher_flagged(root: Path) -> set[str]:
    exe = shutil.which("kingfisher")
    if exe is None:
        pytest.skip("kingfisher is not installed (pip install kingfisher-bin)")
    proc = _run([exe, "scan", str(root), "--no-validate", "--no-update-check", "--no-dedup", "--git-history", "none",
                 "-f", "json", "-q"], cwd=root)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    findings = json.loads(proc.stdout)["findings"]
    return {Path(f["finding"]["path"]).name for f in findings}


def cleanroom_results(pos: list[dict], benign: list[str]) -> tuple[list[bool], list[bool]]:
    r = Redactor()
    rnd = random.Random(3)
    hits = []
    for i, case in enumerate(pos):
        text = case["text"] + "\n"
        if i % 3 == 0:  # written in pieces, cut inside the secret
            at = text.find(case["secret"])
            cuts = sorted({at + rnd.randrange(1, max(2, len(case["secret"]))), rnd.randrange(1, len(text))})
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            s = r.stream()
            out = "".join(s.feed(p) for p in pieces) + s.close()
        else:
            out = r.redact(text)
        hits.append(case["secret"] not in out)
    fps = [r.redact(line) != line for line in benign]
    return hits, fps


def test_three_tools_on_one_corpus(tmp_path):
    pos, benign = positive_cases(), benign_cases()
    pos_files = _write(tmp_path / "pos", [c["text"] for c in pos])
    ben_files = _write(tmp_path / "ben", benign)
    os.chmod(tmp_path, 0o755)

    rows = {}
    ours_hits, ours_fps = cleanroom_results(pos, benign)
    rows["cleanroom"] = (ours_hits, ours_fps)
    for name, scan in (("detect-secrets", detect_secrets_flagged), ("kingfisher", kingfisher_flagged)):
        flagged_pos, flagged_ben = scan(tmp_path / "pos"), scan(tmp_path / "ben")
        rows[name] = ([p.name in flagged_pos for p in pos_files], [p.name in flagged_ben for p in ben_files])

    formats = len({c["rule"] for c in pos})
    print(f"\nredaction quality: {len(pos)} secrets ({formats} formats x 3 envelopes, "
          f"{sum(1 for i in range(len(pos)) if i % 3 == 0)} split across writes for cleanroom), "
          f"{len(benign)} benign look-alikes")
    print(f"  {'tool':<16}{'recall':>10}{'found':>12}{'false pos':>12}")
    for name, (hits, fps) in rows.items():
        print(f"  {name:<16}{sum(hits) / len(hits):>10.1%}{sum(hits):>7}/{len(hits):<5}{sum(fps):>7}/{len(fps)}")
    by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for i, c in enumerate(pos):
        row = by_family[c["family"]]
        row[0] += 1
        row[1] += rows["cleanroom"][0][i]
        row[2] += rows["detect-secrets"][0][i]
        row[3] += rows["kingfisher"][0][i]
    print(f"  {'family':<16}{'cases':>7}{'cleanroom':>11}{'detect-sec':>12}{'kingfisher':>12}")
    for fam, (n, a, b, k) in by_family.items():
        print(f"  {fam:<16}{n:>7}{a:>11}{b:>12}{k:>12}")
    best = max(sum(rows[t][0]) for t in ("detect-secrets", "kingfisher"))
    fewest = min(sum(rows[t][1]) for t in ("detect-secrets", "kingfisher"))
    print(f"  targets: cleanroom recall >= best other ({sum(ours_hits)} vs {best}): "
          f"{'met' if sum(ours_hits) >= best else 'NOT met'}; false positives <= fewest other "
          f"({sum(ours_fps)} vs {fewest}): {'met' if sum(ours_fps) <= fewest else 'NOT met'}")
    missed = [c["rule"] + "/" + c["envelope"] for c, h in zip(pos, ours_hits, strict=True) if not h]
    if missed:
        print(f"  cleanroom missed: {', '.join(missed[:20])}")
    fp_lines = [b for b, f in zip(benign, ours_fps, strict=True) if f]
    if fp_lines:
        print(f"  cleanroom false positives: {fp_lines[:10]}")
    assert len(pos) >= 450 and formats >= 150
