"""Sharding end to end: 3 shards as 3 processes through `cleanroom test --shard`, merged.

The generated suite sleeps known lengths (a few dominate, so a split by count is badly
unbalanced) and has every verdict (passed, failed, error, skipped, xfail, parametrized).
Each test also logs its own node id when it runs, so "ran exactly once" is checked on
evidence independent of the reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sandbox.testing.shard import split

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = '''
import os
import pytest

@pytest.fixture(autouse=True)
def _log_run(request):
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(request.node.nodeid + "\\n")

@pytest.fixture
def broken():
    raise RuntimeError("set-up fails on purpose")
'''

SLOW = '''
import time
import pytest

def test_heavy():
    time.sleep(2.0)

@pytest.mark.parametrize("n", [1, 2])
def test_medium(n):
    time.sleep(0.8)
'''

LIGHT = '''
import time
import pytest

@pytest.mark.parametrize("n", range(12))
def test_light(n):
    time.sleep(0.2)
'''

VERDICTS = '''
import pytest

def test_fails():
    assert 1 == 2

def test_error(broken):
    pass

def test_skipped():
    pytest.skip("on purpose")

@pytest.mark.xfail(reason="on purpose")
def test_xfail():
    assert False

def test_passes():
    pass
'''


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, text in {"conftest.py": CONFTEST, "test_a_slow.py": SLOW, "test_b_light.py": LIGHT,
                       "test_c_verdicts.py": VERDICTS}.items():
        (suite / name).write_text(textwrap.dedent(text))
    return suite


def _cleanroom_test(suite: Path, log: Path, *args: str) -> subprocess.Popen:
    # PYTHONPATH: the checkout under test, not whatever the venv has installed.
    env = {**os.environ, "RUN_LOG": str(log), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "sandbox.cli", "test", *args, "-p", "no:cacheprovider",
                             str(suite)], cwd=suite, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def _verdicts(report: dict) -> dict[str, str]:
    return {t["nodeid"]: t["outcome"] for t in report["tests"]}


def test_three_shard_processes_run_each_test_once_and_merge_to_the_unsharded_run(tmp_path):
    suite = _suite(tmp_path)
    base = tmp_path / "base.json"
    code, out = _finish(_cleanroom_test(suite, tmp_path / "base.log", "--report", str(base)))
    assert code == 1, out  # the suite fails on purpose
    unsharded = json.loads(base.read_text())
    assert len(unsharded["tests"]) == 20
    assert set(_verdicts(unsharded).values()) == {"passed", "failed", "error", "skipped"}

    procs = [_cleanroom_test(suite, tmp_path / f"shard{k}.log", "--shard", f"{k}/3", "--durations", str(base),
                             "--report", str(tmp_path / f"shard{k}.json")) for k in (1, 2, 3)]
    outcomes = [_finish(p) for p in procs]
    for k, (_, out) in enumerate(outcomes, 1):
        assert f"cleanroom shard {k}/3 (balanced by recorded durations)" in out, out

    # Every test ran exactly once across the shards (the tests' own log, not the reports).
    ran = [line for k in (1, 2, 3) for line in (tmp_path / f"shard{k}.log").read_text().splitlines()]
    assert sorted(ran) == sorted(set(ran))
    assert set(ran) == set((tmp_path / "base.log").read_text().splitlines()) == set(_verdicts(unsharded))

    merged_path = tmp_path / "all.json"
    r = subprocess.run([sys.executable, "-m", "sandbox.cli", "report", "merge",
                        *(str(tmp_path / f"shard{k}.json") for k in (3, 1, 2)), "-o", str(merged_path)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    merged = json.loads(merged_path.read_text())
    assert _verdicts(merged) == _verdicts(unsharded)
    assert merged["totals"]["tests"] == 20 and merged["totals"]["failed"] == unsharded["totals"]["failed"] == 2
    assert [s["shard"] for s in merged["shards"]] == ["1/3", "2/3", "3/3"]
    assert sum(s["tests"] for s in merged["shards"]) == 20 and merged["shards_missing"] == []
    # A shard's exit code is its own verdicts': failing shards fail, the others pass.
    for (code, out), s in zip(outcomes, merged["shards"], strict=True):
        assert code == (1 if s["failed"] else 0), out

    # Balance, measured: the longest shard's recorded test time within 25 % of the ideal.
    loads = [s["test_seconds"] for s in merged["shards"]]
    ideal = unsharded["totals"]["test_seconds"] / 3
    assert max(loads) <= 1.25 * ideal, (loads, ideal)
    # ...where a split by count would not be (the suite is skewed enough to tell).
    durations = {t["nodeid"]: t["duration"] for t in unsharded["tests"]}
    by_count = split([t["nodeid"] for t in unsharded["tests"]], 3)
    assert max(sum(durations[n] for n in s) for s in by_count) > 1.25 * ideal


def test_more_shards_than_tests_leaves_an_empty_shard_that_passes(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_one.py").write_text("def test_only():\n    pass\n")
    (suite / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    codes = [_finish(_cleanroom_test(suite, tmp_path / "log", "--shard", f"{k}/2",
                                     "--report", str(tmp_path / f"{k}.json"))) for k in (1, 2)]
    assert [c for c, _ in codes] == [0, 0], codes
    reports = [json.loads((tmp_path / f"{k}.json").read_text()) for k in (1, 2)]
    assert [r["shard"]["selected"] for r in reports] == [1, 0]
    assert reports[0]["shard"]["split"] == reports[1]["shard"]["split"]
