"""The JSON run report: its totals, and merging the reports of shards into one.

A report is ``{"tests": [{"nodeid", "outcome", "duration", ...}], "totals": {...}}``
and, from a sharded run, ``"shard": {"index", "total", "collected", "selected",
"split", "balanced"}``. The plugin writes one per run; ``cleanroom report merge``
combines a sharded run's reports into one of the same shape, with a ``shards``
summary, after checking the shards are one split of one suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.errors import CleanroomError

FAILED = ("failed", "error")


class ReportError(CleanroomError):
    """Reports that cannot be read or merged: which file, what is wrong, the fix."""


def load_report(path: str | Path) -> dict[str, Any]:
    """A report read back; ValueError if it is not one."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ValueError("not a cleanroom report (no \"tests\" list)")
    return data


def summarize(tests: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, sandbox figures and redactions over a list of test entries."""
    sandboxes = [s for t in tests for s in t.get("sandboxes", [])]
    redactions: dict[str, int] = {}
    for t in tests:
        for k, v in t.get("redactions", {}).items():
            redactions[k] = redactions.get(k, 0) + v
    return {
        "tests": len(tests),
        "passed": sum(t["outcome"] == "passed" for t in tests),
        "failed": sum(t["outcome"] in FAILED for t in tests),
        "skipped": sum(t["outcome"] == "skipped" for t in tests),
        "test_seconds": round(sum(float(t.get("duration") or 0.0) for t in tests), 4),
        "sandboxes": len(sandboxes),
        "peak_memory_bytes": max((s.get("peak_memory_bytes") or 0 for s in sandboxes), default=0),
        "redactions": redactions,
    }


def _check_shards(named: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The shards must be one split: same N and digest, each index once. Returns what is missing."""
    sharded = [(path, r["shard"]) for path, r in named if r.get("shard")]
    if not sharded:
        return {}
    if len(sharded) != len(named):
        plain = [p for p, r in named if not r.get("shard")]
        raise ReportError(f"{', '.join(plain)}: not a shard's report, merged with shard reports; "
                          f"merge the reports of one sharded run")
    totals = {s["total"] for _, s in sharded}
    splits = {s.get("split") for _, s in sharded}
    if len(totals) > 1 or len(splits) > 1:
        which = "; ".join(f"{p}: shard {s['index']}/{s['total']} split {s.get('split')}" for p, s in sharded)
        raise ReportError(f"the shards were split differently ({which}); every shard of a run must collect the "
                          f"same tests with the same N and the same --cleanroom-durations file")
    seen: dict[int, str] = {}
    for path, s in sharded:
        if s["index"] in seen:
            raise ReportError(f"{path} and {seen[s['index']]} are both shard {s['index']}/{s['total']}; "
                              f"give each shard's report once")
        seen[s["index"]] = path
    total = totals.pop()
    return {"of": total, "missing": [i for i in range(1, total + 1) if i not in seen]}


def merge_reports(paths: list[str | Path]) -> dict[str, Any]:
    """One report from several: every test once, totals over all, a summary per input."""
    named: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        try:
            named.append((str(path), load_report(path)))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{path}: cannot read a cleanroom report ({exc}); pass the files that "
                              f"--cleanroom-report / cleanroom test --report wrote") from exc
    coverage = _check_shards(named)
    tests: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    shards = []
    for path, report in named:
        for t in report["tests"]:
            if t["nodeid"] in tests:
                raise ReportError(f"{t['nodeid']} is in both {origin[t['nodeid']]} and {path}: a test ran in two "
                                  f"shards, so these are not one split of one run")
            tests[t["nodeid"]] = t
            origin[t["nodeid"]] = path
        own = report.get("totals", {})
        entry = {"report": path, **{k: v for k, v in summarize(report["tests"]).items() if k != "redactions"},
                 "duration_seconds": own.get("duration_seconds")}
        if report.get("shard"):
            entry["shard"] = f"{report['shard']['index']}/{report['shard']['total']}"
        shards.append(entry)
    shards.sort(key=lambda e: (e.get("shard") is None, int(e.get("shard", "0/0").split("/")[0]), e["report"]))
    merged = sorted(tests.values(), key=lambda t: t["nodeid"])
    totals = summarize(merged)
    durations = [e["duration_seconds"] for e in shards if e["duration_seconds"] is not None]
    totals["duration_seconds"] = round(sum(durations), 3)  # machine time over all shards
    totals["longest_shard_seconds"] = max(durations, default=0.0)  # the wall time of a parallel run
    for key in ("containers_created", "containers_reused"):
        totals[key] = sum(int(r.get("totals", {}).get(key) or 0) for _, r in named)
    totals["audit_logs"] = [r["totals"]["audit_log"] for _, r in named if r.get("totals", {}).get("audit_log")]
    out: dict[str, Any] = {"tests": merged, "totals": totals, "shards": shards}
    if coverage:
        out["shards_missing"] = coverage["missing"]
    return out
