"""A session's cgroup, as its execs need it: read the counters before and after a
command, and turn the difference into that exec's usage and breaches. (Nothing is
moved: the session's agent sits in the cgroup from before its start, and every command
it forks is born there.)

The cgroup confiner made the sandbox's cgroup (its path is in the handle's facts);
any confiner exposing a cgroup ``driver`` (read_usage) serves. Without one (an
environment opened with ``confine=False``) execs run unconfined and report no usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sandbox.engine.types import Confiner, LimitBreach, SandboxHandle, Usage


class UsageReader(Protocol):
    """A cgroup driver's counters of one sandbox's cgroup (path relative to its root)."""

    def read_usage(self, rel: str) -> dict[str, int]: ...


class CgroupCounters:
    def __init__(self, driver: UsageReader, rel: str) -> None:
        self._driver = driver
        self.rel = rel

    @classmethod
    def of(cls, confiners: Sequence[Confiner], handle: SandboxHandle) -> CgroupCounters | None:
        path = (handle.facts.get("cgroup") or {}).get("path")
        for confiner in confiners:
            driver = getattr(confiner, "driver", None)
            if driver is not None and path and hasattr(driver, "read_usage"):
                return cls(driver, path)
        return None

    def read(self) -> dict[str, int]:
        return dict(self._driver.read_usage(self.rel))


def exec_usage(before: dict[str, int], after: dict[str, int], limits: Usage) -> tuple[Usage, list[LimitBreach]]:
    """One exec's usage (CPU, OOM kills and refused forks are differences; peaks are the
    session's so far: the kernel keeps one high-water mark per cgroup) and its breaches."""
    if not after:
        return Usage(), []
    oom = after.get("oom_kills", 0) - before.get("oom_kills", 0)
    hits = after.get("pids_limit_hits", 0) - before.get("pids_limit_hits", 0)
    usage = Usage(peak_memory_bytes=after.get("peak_memory", after.get("memory")),
                  cpu_seconds=(after.get("cpu_ns", 0) - before.get("cpu_ns", 0)) / 1e9,
                  peak_pids=max(after.get("pids", 0), after.get("peak_pids", 0)) or None,
                  oom_kills=oom, pids_limit_hits=hits, memory_limit_bytes=limits.memory_limit_bytes,
                  pids_limit=limits.pids_limit, cpu_limit_percent=limits.cpu_limit_percent)
    breaches = []
    if oom > 0:
        breaches.append(LimitBreach(limit="memory", limit_value=limits.memory_limit_bytes,
                                    observed=usage.peak_memory_bytes,
                                    detail=f"OOM killer ran {oom} time(s) during this exec"))
    if hits > 0:
        usage.peak_pids = max(usage.peak_pids or 0, limits.pids_limit or 0)
        breaches.append(LimitBreach(limit="pids", limit_value=limits.pids_limit, observed=usage.peak_pids,
                                    detail=f"{hits} fork(s) refused at pids.max during this exec"))
    return usage, breaches
