"""Shard splitting and report merging, as pure functions and through the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.testing.reports import ReportError, merge_reports, summarize
from sandbox.testing.shard import parse_shard, split, split_digest

IDS = [f"t.py::test_{i:02d}" for i in range(10)]


def test_parse_shard_accepts_k_of_n_and_names_the_form_otherwise():
    assert (parse_shard("2/3").index, parse_shard("2/3").total) == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "-1/2"):
        with pytest.raises(pytest.UsageError, match="expected K/N"):
            parse_shard(bad)


def test_count_split_is_contiguous_complete_and_even():
    shards = split(IDS, 3)
    assert shards == [IDS[0:4], IDS[4:7], IDS[7:10]]
    assert split(IDS[:2], 3) == [[IDS[0]], [IDS[1]], []]  # more shards than tests: one is empty


def test_balanced_split_deals_long_tests_apart_and_keeps_collection_order():
    durations = {IDS[0]: 9.0, IDS[1]: 5.0, IDS[2]: 4.0, **{i: 1.0 for i in IDS[3:]}}
    shards = split(IDS, 3, durations)
    assert sorted(sum(shards, [])) == sorted(IDS)  # each test exactly once
    loads = [sum(durations[i] for i in s) for s in shards]
    assert max(loads) == 9.0 and sum(loads) == 25.0  # the 9 s test alone is the floor
    assert all(s == sorted(s, key=IDS.index) for s in shards)
    # The contiguous split of the same suite would be far worse: the test is not trivial.
    assert max(sum(durations[i] for i in s) for s in split(IDS, 3)) == 19.0


def test_split_is_a_pure_function_and_unknown_tests_get_the_average():
    durations = {i: float(n % 3) for n, i in enumerate(IDS[:6])}
    assert split(IDS, 4, durations) == split(list(IDS), 4, dict(durations))
    assert sorted(sum(split(IDS, 4, durations), [])) == sorted(IDS)
    assert split_digest(IDS, 4, durations) == split_digest(IDS, 4, durations)
    assert split_digest(IDS, 4, durations) != split_digest(IDS, 3, durations)
    assert split_digest(IDS, 4, durations) != split_digest(IDS[1:], 4, durations)


def _report(path, tests, shard=None, split="abc", seconds=1.0):
    data = {"tests": [{"nodeid": n, "outcome": o, "duration": d} for n, o, d in tests],
            "totals": {"duration_seconds": seconds, "containers_created": 1}}
    if shard:
        data["shard"] = {"index": shard[0], "total": shard[1], "split": split, "collected": 4, "selected": len(tests)}
    path.write_text(json.dumps(data))
    return path


def test_merge_sums_totals_and_summarises_each_shard(tmp_path):
    a = _report(tmp_path / "a.json", [("x::a", "passed", 1.0), ("x::b", "failed", 2.0)], (1, 2), seconds=3.5)
    b = _report(tmp_path / "b.json", [("x::c", "skipped", 0.0), ("x::d", "error", 0.5)], (2, 2), seconds=1.0)
    merged = merge_reports([b, a])
    assert [t["nodeid"] for t in merged["tests"]] == ["x::a", "x::b", "x::c", "x::d"]
    t = merged["totals"]
    assert (t["tests"], t["passed"], t["failed"], t["skipped"]) == (4, 1, 2, 1)
    assert t["duration_seconds"] == 4.5 and t["longest_shard_seconds"] == 3.5 and t["containers_created"] == 2
    assert [(s["shard"], s["tests"], s["failed"]) for s in merged["shards"]] == [("1/2", 2, 1), ("2/2", 2, 1)]
    assert merged["shards_missing"] == []
    assert summarize(merged["tests"])["test_seconds"] == 3.5


def test_merge_refuses_overlapping_or_differently_split_shards(tmp_path):
    a = _report(tmp_path / "a.json", [("x::a", "passed", 1.0)], (1, 2))
    again = _report(tmp_path / "a2.json", [("x::a", "passed", 1.0)], (2, 2))
    with pytest.raises(ReportError, match="x::a is in both"):
        merge_reports([a, again])
    other = _report(tmp_path / "o.json", [("x::b", "passed", 1.0)], (2, 2), split="zzz")
    with pytest.raises(ReportError, match="split differently"):
        merge_reports([a, other])
    third = _report(tmp_path / "t.json", [("x::b", "passed", 1.0)], (2, 3))
    with pytest.raises(ReportError, match="split differently"):
        merge_reports([a, third])
    with pytest.raises(ReportError, match="both shard 1/2"):
        merge_reports([a, _report(tmp_path / "d.json", [("x::c", "passed", 1.0)], (1, 2))])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ReportError, match="bad.json: cannot read a cleanroom report"):
        merge_reports([a, tmp_path / "bad.json"])


def test_cli_merge_writes_the_report_and_exits_1_when_a_shard_is_missing(tmp_path):
    a = _report(tmp_path / "a.json", [("x::a", "passed", 1.0)], (1, 3))
    b = _report(tmp_path / "b.json", [("x::b", "failed", 1.0)], (2, 3))
    out = tmp_path / "all.json"
    r = CliRunner().invoke(cli, ["report", "merge", str(a), str(b), "-o", str(out)])
    assert r.exit_code == 1 and "no report from shard(s) 3" in r.output
    assert json.loads(out.read_text())["totals"]["tests"] == 2
    r = CliRunner().invoke(cli, ["report", "merge", str(a), str(b), "-o", str(out), "--allow-missing"])
    assert r.exit_code == 0 and "2 tests, 1 passed, 1 failed" in r.output
    r = CliRunner().invoke(cli, ["report", "merge", str(a), str(a), "-o", str(out)])
    assert r.exit_code == 2 and "cleanroom: error:" in r.output
