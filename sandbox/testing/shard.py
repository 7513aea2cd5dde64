"""Splitting one collected suite across N CI runners (``--cleanroom-shard K/N``).

Every runner collects the same tests and keeps its own share, so the split must be a
pure function of the collected node ids (and, when given, the durations a previous
report recorded): no randomness, no host state. Without durations, shard K gets the
K-th contiguous run of tests in collection order (modules stay together, so their
fixtures are set up on one runner only). With durations, the longest tests are dealt
first, each to the shard with the least work so far (longest-processing-time first),
which keeps the slowest shard close to total/N even when a few tests dominate.

Each shard records a digest of its split: ``cleanroom report merge`` refuses shards
that were split differently (another N, another collection, other durations), since
then some test ran twice or never.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sandbox.testing.reports import load_report


class ShardSpec(msgspec.Struct, frozen=True):
    index: int  # 1-based, as CI systems count (GitLab's CI_NODE_INDEX)
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str) -> ShardSpec:
    """``"K/N"`` with 1 <= K <= N; anything else is a usage error that says so."""
    k, sep, n = text.strip().partition("/")
    if not sep or not k.isdigit() or not n.isdigit() or not 1 <= int(k) <= int(n):
        raise pytest.UsageError(f"--cleanroom-shard {text!r}: expected K/N with 1 <= K <= N (e.g. 2/3)")
    return ShardSpec(int(k), int(n))


def load_durations(path: str | Path) -> dict[str, float]:
    """Node id → seconds, from a cleanroom JSON report (one shard's or a merged one)."""
    try:
        data = load_report(path)
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--cleanroom-durations {path}: cannot read a cleanroom report ({exc}); every "
                                f"shard must read the same file, so a missing one is an error, not a fallback") from exc
    return {t["nodeid"]: float(t.get("duration") or 0.0) for t in data["tests"]}


def split(nodeids: list[str], total: int, durations: dict[str, float] | None = None) -> list[list[str]]:
    """The node ids of each of ``total`` shards, each list in collection order."""
    if not durations:
        size, extra = divmod(len(nodeids), total)
        out, start = [], 0
        for i in range(total):
            end = start + size + (1 if i < extra else 0)
            out.append(nodeids[start:end])
            start = end
        return out
    known = [durations[n] for n in nodeids if n in durations]
    # A test the report does not know (new since) is assumed to be of average length.
    default = sum(known) / len(known) if known else 1.0
    order = {n: i for i, n in enumerate(nodeids)}
    loads = [0.0] * total
    shards: list[list[str]] = [[] for _ in range(total)]
    for nodeid in sorted(nodeids, key=lambda n: (-durations.get(n, default), order[n])):
        target = min(range(total), key=lambda i: (loads[i], i))
        loads[target] += durations.get(nodeid, default)
        shards[target].append(nodeid)
    return [sorted(s, key=order.__getitem__) for s in shards]


def split_digest(nodeids: list[str], total: int, durations: dict[str, float] | None) -> str:
    """What every shard of one split agrees on: the collection, N and the durations used."""
    used = {n: durations[n] for n in nodeids if n in durations} if durations else {}
    blob = json.dumps([nodeids, total, used], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class ShardPlugin:
    """Keeps this shard's tests; records what it did for the report (``config._cleanroom_shard``)."""

    def __init__(self, config: pytest.Config, spec: ShardSpec, durations_path: str | None) -> None:
        self.config = config
        self.spec = spec
        self.durations = load_durations(durations_path) if durations_path else None
        self.info: dict[str, Any] = {"index": spec.index, "total": spec.total, "balanced": bool(self.durations)}
        config._cleanroom_shard = self.info

    @pytest.hookimpl(trylast=True)  # after -k/-m and other plugins narrowed the collection
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        nodeids = [item.nodeid for item in items]
        mine = set(split(nodeids, self.spec.total, self.durations)[self.spec.index - 1])
        keep = [item for item in items if item.nodeid in mine]
        dropped = [item for item in items if item.nodeid not in mine]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        self.info.update(collected=len(nodeids), selected=len(keep),
                         split=split_digest(nodeids, self.spec.total, self.durations))

    def pytest_report_header(self, config: pytest.Config) -> str:
        how = "balanced by recorded durations" if self.durations else "contiguous by count"
        return f"cleanroom shard {self.spec} ({how})"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # More shards than tests leaves one empty: that is a correct share, not a failure.
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.info.get("collected"):
            session.exitstatus = pytest.ExitCode.OK
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker: the controller writes the report
            workeroutput["cleanroom_shard"] = json.dumps(self.info)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # xdist controller: the workers collected (identically); take their split record.
        data = getattr(node, "workeroutput", {}).get("cleanroom_shard")
        if data:
            self.info.update(json.loads(data))


def register(config: pytest.Config) -> None:
    """Called by the plugin's pytest_configure: installs the shard filter when asked."""
    text = config.getoption("cleanroom_shard")
    durations = config.getoption("cleanroom_durations")
    if text:
        config.pluginmanager.register(ShardPlugin(config, parse_shard(text), durations), "cleanroom-shard")
    elif durations:
        raise pytest.UsageError("--cleanroom-durations balances shards: give --cleanroom-shard K/N with it")
