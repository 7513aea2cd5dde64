"""Typed results of a sandbox run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import msgspec

from sandbox.engine.types import LimitBreach, Usage
from sandbox.errors import CleanroomError

# Set by the pytest plugin for the running test (sandbox/testing/snapshots.py): the engine
# knows nothing of pytest, and the plugin decides where and how a snapshot is kept.
SNAPSHOT_MATCHER: ContextVar[Callable[..., None] | None] = ContextVar("cleanroom_snapshot_matcher", default=None)


class UsageSample(msgspec.Struct, array_like=True, frozen=True):
    """One reading of a sandbox's cgroup: when (Unix time), memory, CPU (100 = one core), processes."""

    t: float
    memory_bytes: int
    cpu_percent: float | None  # None for the first reading: CPU is a rate between two
    pids: int


class RunResult(msgspec.Struct, kw_only=True):
    """One finished sandbox. stdout/stderr are already redacted."""

    sandbox: str
    image: str
    command: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration_seconds: float
    usage: Usage = msgspec.field(default_factory=Usage)
    redactions: dict[str, int] = msgspec.field(default_factory=dict)
    timed_out: bool = False
    oom_killed: bool = False
    breaches: list[LimitBreach] = msgspec.field(default_factory=list)
    truncated: bool = False
    confine_seconds: float = 0.0  # init → confined: cgroup placement and network rules
    unconfined: str | None = None  # why no cgroup limits applied (an explicit opt-out), else None
    # With enable_memory_tracking: the readings taken every metrics_interval while it lived.
    timeseries: list[UsageSample] = msgspec.field(default_factory=list)
    # With enable_profiling: seconds the engine spent in each stage (create, init, confine, ...).
    phases: dict[str, float] = msgspec.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.breaches

    @property
    def verdict(self) -> str:
        if self.timed_out:
            return "timeout"
        if self.oom_killed:
            return "oom"
        if self.breaches:
            return "limit"
        return "passed" if self.exit_code == 0 else "failed"

    def assert_matches_snapshot(self, name: str | None = None, *,
                                files: Mapping[str, str | bytes] | None = None) -> None:
        """Compare this result's redacted, normalised output (and ``files``: contents the
        test read back) with the running test's stored snapshot; needs the pytest plugin
        and ``enable_snapshot_testing``."""
        matcher = SNAPSHOT_MATCHER.get()
        if matcher is None:
            raise CleanroomError("assert_matches_snapshot: no snapshot context; call it in a pytest test that uses "
                                 "cleanroom's `sandbox` or `snapshot` fixture")
        matcher(self, name, files)


def audit_records(result: RunResult) -> list[tuple[str, str, dict[str, Any]]]:
    """(event, minimum audit level, data) for one finished sandbox, in order."""
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("sandbox.removed", "Minimal", {"sandbox": result.sandbox, "exit_code": result.exit_code})]
    if result.redactions:
        out.append(("redaction.counts", "High", {"sandbox": result.sandbox, "counts": result.redactions}))
    # Maximum: what was shown can later be proven unchanged, without storing it.
    out.append(("sandbox.output", "Maximum", {"sandbox": result.sandbox,
                                               "stdout_sha256": hashlib.sha256(result.stdout.encode()).hexdigest(),
                                               "stderr_sha256": hashlib.sha256(result.stderr.encode()).hexdigest()}))
    out.append(("sandbox.verdict", "Medium", {"sandbox": result.sandbox, "verdict": result.verdict,
                                              "exit_code": result.exit_code,
                                              "duration_seconds": round(result.duration_seconds, 3),
                                              "breaches": msgspec.to_builtins(result.breaches),
                                              **({"unconfined": result.unconfined} if result.unconfined else {})}))
    return out


__all__ = ["LimitBreach", "RunResult", "Usage", "UsageSample", "audit_records"]
