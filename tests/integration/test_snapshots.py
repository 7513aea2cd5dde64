"""Snapshot testing end to end: pytest subprocesses running real sandboxes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUITE = '''
import os

IMG = "localhost/cleanroom/busybox:latest"
SCRIPT = ("echo token=$T; echo raw $T; echo at $(date -Iseconds) took 0.25s in /tmp/tmpq1w2e3/out; "
          "echo extra=$EXTRA; echo oops >&2; exit 3")

def test_job(sandbox, cleanroom):
    secret = os.environ["SNAP_SECRET"]
    cleanroom.add_secret(secret, "token")
    r = sandbox(IMG, ["/bin/sh", "-c", SCRIPT], env={"T": secret, "EXTRA": os.environ.get("EXTRA", "same")})
    r.assert_matches_snapshot()
    r.assert_matches_snapshot("with files", files={"/report.txt": "the key was " + secret + "\\n"})

def test_fixture(snapshot, sandbox):
    snapshot(sandbox(IMG, ["/bin/echo", "hello"]))
'''


def _run(suite: Path, *args: str, secret: str, extra: str = "same") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SNAP_SECRET": secret, "EXTRA": extra}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite), *args],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=300)


def _suite(tmp_path: Path, snapshots_on: bool) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_snap.py").write_text(textwrap.dedent(SUITE))
    (suite / "cleanroom.toml").write_text(f"[cleanroom]\nenable_snapshot_testing = {str(snapshots_on).lower()}\n")
    return suite


def test_snapshots_are_written_on_update_compared_after_and_never_hold_a_secret(tmp_path):
    suite = _suite(tmp_path, True)
    first = _run(suite, secret="first-Secret-9f8e7d")
    assert first.returncode == 1 and "no snapshot" in first.stdout and "--cleanroom-snapshot-update" in first.stdout

    written = _run(suite, "--cleanroom-snapshot-update", secret="first-Secret-9f8e7d")
    assert written.returncode == 0, written.stdout + written.stderr
    snaps = sorted((suite / "__snapshots__" / "test_snap").iterdir())
    assert [p.name for p in snaps] == ["test_fixture.txt", "test_job.txt", "test_job.with_files.txt"]
    job = (suite / "__snapshots__" / "test_snap" / "test_job.txt").read_text()
    assert "exit_code: 3" in job and "oops" in job and "at <TIMESTAMP> took <DURATION> in <TMP>/out" in job
    for p in snaps:  # the secret, in any of its forms, is in no snapshot
        text = p.read_text()
        assert "first-Secret-9f8e7d" not in text and "9f8e7d" not in text
    assert "[REDACTED:" in (suite / "__snapshots__" / "test_snap" / "test_job.with_files.txt").read_text()

    # Another run: another secret, another clock; the snapshots still match.
    again = _run(suite, secret="second-Secret-1a2b3c")
    assert again.returncode == 0, again.stdout + again.stderr

    changed = _run(suite, secret="second-Secret-1a2b3c", extra="different")
    assert changed.returncode == 1
    assert "differs from this run" in changed.stdout and "+++ this run" in changed.stdout
    assert "-extra=same\n" in changed.stdout and "+extra=different\n" in changed.stdout
    assert "second-Secret-1a2b3c" not in changed.stdout


def test_with_the_key_off_snapshots_fail_naming_the_key(tmp_path):
    suite = _suite(tmp_path, False)
    r = _run(suite, "--cleanroom-snapshot-update", "-rA", secret="s-Secret-000111")
    assert r.returncode == 1
    assert "1 failed" in r.stdout and "1 error" in r.stdout, r.stdout
    assert r.stdout.count("set `enable_snapshot_testing = true`") >= 2, r.stdout
    assert not (suite / "__snapshots__").exists()
