"""The shared-services cgroup: where singleton services live, owned by no environment.

A singleton outlives the environment that made it and is used by later ones, so no
environment's budget can hold it. Singletons are placed instead in

    <subtree>/shared-services/            limits of all singletons together
    <subtree>/shared-services/<container>  limits of one singleton

with the limits of ``[cleanroom.resource_limits.services]`` of the policy whose
environment creates them: the group's when it creates the first singleton of an empty
group, each singleton's own when it creates that singleton. A later environment whose
policy asks for other limits does not change them (that would take memory from services
others are using); ``report`` names the difference as a mismatch instead.

Group changes (make, limit, place, remove) hold one file lock, so two processes never
race to make and remove the group at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from filelock import FileLock
from loguru import logger

from sandbox.confine.cgroups import CFS_PERIOD_US, CgroupDriver, CgroupError, _proc_cgroups
from sandbox.engine.types import SHARED_SERVICES_CGROUP

GROUP = SHARED_SERVICES_CGROUP
_UNLIMITED = 1 << 62  # v1 reports "no limit" as a huge, page-rounded figure
_PAGE = 4096  # v1 rounds memory limits down to a page


def service_rel(name: str) -> str:
    return f"{GROUP}/{name}"


def _lock() -> FileLock:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cleanroom-{os.getuid()}"
    d = Path(runtime) / "cleanroom" / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return FileLock(str(d / "shared-services-cgroup.lock"), timeout=30)


def _busy(driver: CgroupDriver) -> bool:
    """Does any singleton run in the group now?"""
    return any(driver.tasks(service_rel(c)) for c in driver.children(GROUP))


def _sweep(driver: CgroupDriver, *, group_too: bool) -> list[str]:
    """Remove the group's empty children (and the group, once empty); what was removed."""
    removed = []
    for child in driver.children(GROUP):
        rel = service_rel(child)
        if driver.tasks(rel):
            continue
        try:
            driver.remove(rel, timeout=1)
            removed.append(rel)
        except CgroupError as exc:
            logger.debug("shared-services cgroup not removed yet", cgroup=rel, error=str(exc))
    if group_too and GROUP in driver.children() and not driver.children(GROUP):
        try:
            driver.remove(GROUP, timeout=1)
            removed.append(GROUP)
        except CgroupError as exc:
            logger.debug("shared-services cgroup not removed yet", cgroup=GROUP, error=str(exc))
    return removed


def place(driver: CgroupDriver, limits: Any, name: str, pid: int) -> tuple[str, dict[str, Any]]:
    """Put singleton ``name``'s process ``pid`` in its cgroup under the group; returns the
    cgroup and what was applied: its own limits, and the group's when this made the group."""
    rel = service_rel(name)
    with _lock():
        applied: dict[str, Any] = {}
        if not _busy(driver):
            # No singleton runs: start from a fresh group so it carries exactly this
            # policy's limits (a limit left unset must not keep an earlier policy's value).
            _sweep(driver, group_too=True)
            driver.make(GROUP)
            applied["group"] = driver.set_limits(GROUP, memory=limits.memory_bytes, cpu_percent=limits.cpu_percent,
                                                 pids=limits.pids_limit)
        elif name in driver.children(GROUP) and not driver.tasks(rel):
            driver.remove(rel, timeout=1)  # a replaced singleton's: its limits were another policy's
        driver.make(rel)
        applied["service"] = driver.set_limits(rel, memory=limits.service_memory_bytes,
                                               pids=limits.service_pids_limit)
        driver.place(rel, pid)
    return rel, applied


def release(driver: CgroupDriver, name: str) -> None:
    """After singleton ``name``'s container is gone: its cgroup goes, and the group once empty."""
    with _lock():
        if driver.tasks(service_rel(name)):
            return  # a singleton of the same name, made since (a replacement), runs there now
        try:
            driver.remove(service_rel(name), timeout=2)
        except CgroupError as exc:
            logger.warning("singleton cgroup left behind (prune removes it)", cgroup=service_rel(name),
                           error=str(exc))
        _sweep(driver, group_too=True)


def prune(driver: CgroupDriver) -> list[str]:
    """The group's empty cgroups (singletons gone), and the group itself once empty."""
    if GROUP not in driver.children():
        return []
    with _lock():
        return _sweep(driver, group_too=True)


def locate(driver: CgroupDriver, pid: int, name: str) -> str | None:
    """The cgroup (relative to the subtree) process ``pid`` is in, as the kernel says;
    without the process, the singleton's own cgroup in the group if it exists."""
    base = getattr(driver, "base", "")
    prefix = "/" + str(base.relative_to(driver.root)) if isinstance(base, Path) else f"/{base}"
    for ctrls, path in _proc_cgroups(pid) if pid else []:
        if ("memory" in ctrls.split(",") or ctrls == "") and path.startswith(prefix + "/"):
            return path[len(prefix) + 1:]
    return service_rel(name) if name in driver.children(GROUP) else None


def usage(driver: CgroupDriver, rel: str) -> dict[str, Any]:
    """One cgroup's use and limits, as the kernel has them now."""
    raw = driver.read_usage(rel)
    mem_limit = raw.get("memory_limit")
    quota = raw.get("cpu_quota_us")
    return {
        "memory_bytes": {"used": raw.get("memory", 0), "peak": raw.get("peak_memory", 0),
                         "limit": mem_limit if mem_limit is not None and mem_limit < _UNLIMITED else None},
        "pids": {"used": raw.get("pids", 0), "limit": raw.get("pids_limit")},
        "cpu_percent": {"limit": round(quota * 100 / CFS_PERIOD_US, 1) if quota else None},
        "cpu_seconds": raw.get("cpu_ns", 0) / 1e9,
        "oom_kills": raw.get("oom_kills", 0),
    }


def _differences(have: dict[str, Any], want: list[tuple[str, str, Any]]) -> list[str]:
    """(section of ``have``, policy key, value asked) each; a line per limit that differs."""
    out = []
    for section, key, asked in want:
        actual = have[section]["limit"]
        same = actual == asked
        if not same and actual is not None and asked is not None:
            if section == "memory_bytes":
                same = actual == asked // _PAGE * _PAGE
            elif section == "cpu_percent":
                same = abs(actual - max(1.0, asked)) < 0.1  # the quota's floor is 1 % of a core
        if not same:
            out.append(f"{key}: the cgroup has {actual}, this policy asks {asked}")
    return out


def report(driver: CgroupDriver, limits: Any, used: list[tuple[str, str, int]]) -> dict[str, Any]:
    """The shared services an environment uses — (alias, container name, pid) each — with
    the group's and each one's use and limits, and where its policy asks for other limits."""
    out: dict[str, Any] = {"cgroup": GROUP, "services": {}}
    if GROUP in driver.children():
        group = usage(driver, GROUP)
        group["mismatch"] = _differences(group, [
            ("memory_bytes", "memory_bytes", limits.memory_bytes), ("pids", "pids_limit", limits.pids_limit),
            ("cpu_percent", "cpu_percent", limits.cpu_percent)])
        out["group"] = group
    for alias, name, pid in used:
        rel = locate(driver, pid, name)
        entry: dict[str, Any] = {"container": name, "cgroup": rel,
                                 "shared": rel is not None and rel.startswith(GROUP + "/")}
        if rel is not None:
            entry.update(usage(driver, rel))
            if entry["shared"]:
                entry["mismatch"] = _differences(entry, [
                    ("memory_bytes", "service_memory_bytes", limits.service_memory_bytes),
                    ("pids", "service_pids_limit", limits.service_pids_limit)])
        out["services"][alias] = entry
    return out


def mismatches(services_report: dict[str, Any]) -> list[str]:
    """Every difference between the shared cgroups' limits and this policy's, named."""
    out = [f"{GROUP}: {m}" for m in services_report.get("group", {}).get("mismatch", [])]
    for alias, entry in services_report["services"].items():
        out += [f"{alias} ({entry['cgroup']}): {m}" for m in entry.get("mismatch", [])]
    return out
