"""The frozen clock (deterministic_clock) on real sandboxes, and byte-identical snapshots
from two runs of the same suite under deterministic execution."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from sandbox import CleanroomConfig, CleanroomEnvironment

ROOT = Path(__file__).resolve().parents[2]
SERVICES = "localhost/cleanroom/services:bookworm"
BUSYBOX = "localhost/cleanroom/busybox:latest"
POLICY = """[cleanroom]
enable_deterministic_execution = true
deterministic_seed = 11
deterministic_clock = "2026-01-01T00:00:00Z"
enable_snapshot_testing = true
"""
FROZEN = 1767225600  # 2026-01-01T00:00:00Z


def test_dynamically_linked_programs_see_the_frozen_clock_while_time_passes(tmp_path, podman_url):
    with CleanroomEnvironment(CleanroomConfig.from_toml(POLICY), url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(SERVICES, ["/bin/sh", "-c", "date +%s; sleep 1.2; date -u '+%F %T'; "
                                                "python3 -c 'import time; print(int(time.time()))'"])
        static = env.run(BUSYBOX, ["/bin/date", "+%s"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split("\n")[:3] == [str(FROZEN), "2026-01-01 00:00:00", str(FROZEN)]
    # Static busybox ignores LD_PRELOAD: its clock is the host's (documented limit).
    assert static.exit_code == 0 and int(static.stdout) != FROZEN


SUITE = '''
import random

CMD = ("date; date +%s; sleep 1.1; date -Iseconds; hostname; echo seed=$CLEANROOM_SEED; "
       "python3 -c 'import random, time, os; random.seed(int(os.environ[\\"CLEANROOM_SEED\\"])); "
       "print(time.time(), random.random(), hash(\\"cleanroom\\"))'")

def test_clock_and_seeds(sandbox, snapshot):
    r = sandbox("localhost/cleanroom/services:bookworm", ["/bin/sh", "-c", CMD])
    r.assert_matches_snapshot()
    snapshot("test process random: %r" % random.random(), "host side")
'''


def _run_suite(suite: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite),
                           "--cleanroom-snapshot-update"], cwd=suite, env=env, capture_output=True, text=True,
                          timeout=300)


def test_two_runs_of_a_suite_write_byte_identical_snapshots(tmp_path):
    first = tmp_path / "one"
    first.mkdir()
    (first / "test_det.py").write_text(textwrap.dedent(SUITE))
    (first / "cleanroom.toml").write_text(POLICY)
    second = tmp_path / "two"
    shutil.copytree(first, second)
    for suite in (first, second):
        r = _run_suite(suite)
        assert r.returncode == 0, r.stdout + r.stderr
    names = sorted(p.name for p in (first / "__snapshots__" / "test_det").iterdir())
    assert names == ["test_clock_and_seeds.host_side.txt", "test_clock_and_seeds.txt"]
    for name in names:
        a = (first / "__snapshots__" / "test_det" / name).read_bytes()
        b = (second / "__snapshots__" / "test_det" / name).read_bytes()
        assert a == b, (a, b)
    text = (first / "__snapshots__" / "test_det" / "test_clock_and_seeds.txt").read_text()
    # The clock is the policy's, unnormalised (date's own format and the epoch): frozen, not scrubbed.
    assert "Thu Jan  1 00:00:00 UTC 2026\n1767225600\n" in text and "\ncleanroom\nseed=11\n" in text
