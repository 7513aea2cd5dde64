"""CgroupConfiner: the policy's limits, applied between init and start, and read back.

Each environment gets a cgroup carrying its budget; each sandbox a child with its own
limits. The container's init process is placed there before its command runs, so
every process it ever starts inherits the limits. Usage is sampled while it runs
and read exactly at exit; hitting a limit becomes a LimitBreach on the result.
Singletons, which outlive the environment, go to the shared-services cgroup instead
(``sandbox.confine.shared``), under the policy's ``resource_limits.services``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from loguru import logger

from sandbox.confine import shared
from sandbox.confine.cgroups import CgroupDriver, CgroupError
from sandbox.confine.owners import records_dir, write_owner_record
from sandbox.engine.types import (
    LABEL_CGROUP,
    SHARED_SERVICES_CGROUP,
    AuditFn,
    ConfinerBase,
    CreateRequest,
    LimitBreach,
    SandboxHandle,
)
from sandbox.errors import CleanroomError, ContainerError, ResourceLimitExceeded

_SAMPLE_FLOOR = 0.1  # seconds; finer sampling costs more than it tells


# Environment cgroups this process closed but had to keep: a singleton still ran in them.
_KEPT: set[str] = set()
_KEPT_LOCK = threading.Lock()


def _remove_env_cgroup(driver: CgroupDriver, env_rel: str) -> bool:
    """Remove an environment's cgroup and its sandboxes' (those no process is in);
    False when something still runs there (a kept singleton) and it stays."""
    kept = False
    for name in driver.children(env_rel):
        rel = f"{env_rel}/{name}"
        if driver.tasks(rel):
            kept = True  # a singleton kept running on purpose; prune takes it once it stops
            continue
        try:
            driver.remove(rel, timeout=2)
        except CgroupError:
            kept = True
    if kept:
        return False
    try:
        driver.remove(env_rel)
        (records_dir() / f"{env_rel}.json").unlink(missing_ok=True)
    except CgroupError as exc:
        logger.warning("environment cgroup left behind (prune removes it)", error=str(exc))
        return False
    return True


class _Tracked:
    def __init__(self, handle: SandboxHandle, rel: str, limits: dict[str, Any], shared: bool = False) -> None:
        self.handle = handle
        self.rel = rel
        self.limits = limits
        self.shared = shared  # a singleton, in the shared-services cgroup
        self.peak_pids = 0
        self.peak_memory = 0


class CgroupConfiner(ConfinerBase):
    def __init__(self, config: Any, driver: CgroupDriver, *, environment_id: str, audit: AuditFn) -> None:
        if environment_id == SHARED_SERVICES_CGROUP:
            raise CleanroomError(f"an environment cannot be named {environment_id!r}: that is the cgroup of the "
                                 "shared singleton services; choose another name")
        self.driver = driver
        self.config = config
        self.env_rel = environment_id
        self._audit = audit
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)  # a sandbox left: a waiting one may go
        self._live: dict[str, _Tracked] = {}
        self._pending: set[str] = set()  # names reserved by before_create, not yet initialised
        self._shared: set[str] = set()  # of those, singletons: placed in the shared-services cgroup
        self._told: set[str] = set()  # shared-services limit differences already logged and audited
        self.peak_cpu_percent = 0.0
        self.peak_memory_bytes = 0
        self._stop = threading.Event()
        rl = self.config.resource_limits
        driver.make(self.env_rel)
        write_owner_record(environment_id)
        self.budget = driver.set_limits(
            self.env_rel,
            memory=rl.max_memory_usage_bytes,
            cpu_percent=rl.max_cpu_usage_percent * (os.cpu_count() or 1),
        )
        interval = max(_SAMPLE_FLOOR, float(self.config.performance_monitoring.metrics_interval))
        self._interval = min(interval, 1.0) if rl.enable_resource_monitoring else interval
        self._sampler = threading.Thread(target=self._sample_loop, name="cleanroom-usage", daemon=True)
        self._sampler.start()

    # -- engine hooks ---------------------------------------------------------------
    def before_create(self, request: CreateRequest) -> None:
        """Reserve a place within max_container_count: wait for one (bounded by
        container_startup_timeout) or, with on_container_limit = "refuse", fail at once."""
        rl = self.config.resource_limits
        limit = rl.max_container_count
        wait = float(self.config.container_startup_timeout) if rl.on_container_limit == "wait" else 0.0
        deadline = time.monotonic() + wait
        with self._lock:
            while (in_use := len(self._live) + len(self._pending)) >= limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waited = f" after waiting {wait:g} s for a free place" if wait else ""
                    raise ResourceLimitExceeded("containers", limit, in_use + 1, request.name,
                                                f"max_container_count reached{waited}; the sandbox was not created")
                self._slot_freed.wait(remaining)
            self._pending.add(request.name)
            if request.labels.get(LABEL_CGROUP) == SHARED_SERVICES_CGROUP:
                self._shared.add(request.name)

    def create_failed(self, request: CreateRequest) -> None:
        with self._lock:
            self._pending.discard(request.name)
            self._shared.discard(request.name)
            self._slot_freed.notify_all()

    def _limits_for(self, handle: SandboxHandle) -> dict[str, Any]:
        sb = self.config.resource_limits.sandbox
        merged = {
            "memory_bytes": sb.memory_bytes, "memory_swap_bytes": sb.memory_swap_bytes,
            "cpu_percent": sb.cpu_percent, "pids_limit": sb.pids_limit, "io_weight": sb.io_weight,
        }
        unknown = set(handle.limits) - set(merged)
        if unknown:
            raise ContainerError(f"unknown per-call limit(s) {sorted(unknown)} (allowed: {sorted(merged)})",
                                 sandbox=handle.name)
        merged.update({k: v for k, v in handle.limits.items()})
        return merged

    def _services_limits(self) -> dict[str, Any]:
        svc = self.config.resource_limits.services
        return {"memory_bytes": svc.service_memory_bytes, "memory_swap_bytes": None, "cpu_percent": None,
                "pids_limit": svc.service_pids_limit, "io_weight": None}

    def after_init(self, handle: SandboxHandle) -> None:
        # The reservation stays until the sandbox counts as live (end of this method) or
        # create_failed gives it back: in between, its place is never free for another.
        with self._lock:
            is_shared = handle.name in self._shared
        limits = self._services_limits() if is_shared else self._limits_for(handle)
        rel = shared.service_rel(handle.name) if is_shared else f"{self.env_rel}/{handle.name}"
        try:
            if is_shared:
                rel, applied = shared.place(self.driver, self.config.resource_limits.services, handle.name,
                                            handle.pid)
            else:
                self.driver.make(rel)
                applied = self.driver.set_limits(
                    rel, memory=limits["memory_bytes"], memory_swap=limits["memory_swap_bytes"],
                    cpu_percent=limits["cpu_percent"], pids=limits["pids_limit"], io_weight=limits["io_weight"],
                )
                self.driver.place(rel, handle.pid)
        except (CgroupError, OSError) as exc:
            try:
                if is_shared:
                    shared.release(self.driver, handle.name)
                else:
                    self.driver.remove(rel, timeout=1)
            except CgroupError:
                pass
            raise ContainerError(f"confinement failed, the sandbox was not started: {exc}",
                                 sandbox=handle.name) from None
        handle.facts["cgroup"] = {"driver": self.driver.version, "path": rel, "limits": applied}
        u = handle.usage
        u.memory_limit_bytes = limits["memory_bytes"]
        u.pids_limit = limits["pids_limit"]
        u.cpu_limit_percent = limits["cpu_percent"]
        with self._lock:
            self._pending.discard(handle.name)
            self._shared.discard(handle.name)
            self._live[handle.id] = _Tracked(handle, rel, limits, shared=is_shared)

    def after_exit(self, handle: SandboxHandle) -> None:
        with self._lock:
            tracked = self._live.get(handle.id)
        if tracked is None:
            return
        self._fill_usage(tracked, final=True)

    def release(self, handle: SandboxHandle) -> None:
        with self._lock:
            tracked = self._live.pop(handle.id, None)
            self._slot_freed.notify_all()
        if tracked is None:
            if handle.name in self.driver.children(shared.GROUP):
                shared.release(self.driver, handle.name)  # a singleton another process made, now removed
            return
        if tracked.shared:
            shared.release(self.driver, handle.name)
            return
        try:
            self.driver.remove(tracked.rel)
        except CgroupError as exc:
            logger.warning("sandbox cgroup left behind (prune removes it)", sandbox=handle.name, error=str(exc))

    def close(self) -> None:
        self._stop.set()
        self._sampler.join(timeout=2)
        if not _remove_env_cgroup(self.driver, self.env_rel):
            with _KEPT_LOCK:
                _KEPT.add(self.env_rel)  # a singleton runs in it on purpose
        # Environments this process closed earlier whose singletons have since been
        # removed (replaced by a later definition) left empty cgroups: sweep them now.
        with _KEPT_LOCK:
            earlier = sorted(_KEPT - {self.env_rel})
        for env_rel in earlier:
            if _remove_env_cgroup(self.driver, env_rel):
                with _KEPT_LOCK:
                    _KEPT.discard(env_rel)

    # -- usage ----------------------------------------------------------------------
    def _fill_usage(self, t: _Tracked, final: bool = False) -> None:
        raw = self.driver.read_usage(t.rel)
        t.peak_pids = max(t.peak_pids, raw.get("pids", 0), raw.get("peak_pids", 0))
        t.peak_memory = max(t.peak_memory, raw.get("peak_memory", raw.get("memory", 0)))
        if not final:
            return
        u = t.handle.usage
        u.peak_memory_bytes = t.peak_memory
        u.cpu_seconds = raw.get("cpu_ns", 0) / 1e9
        u.peak_pids = t.peak_pids
        u.oom_kills = raw.get("oom_kills", 0)
        u.pids_limit_hits = raw.get("pids_limit_hits", 0)
        if u.pids_limit_hits and t.limits["pids_limit"]:
            # v1 has no pids.peak and sampling can miss a short burst, but a fork
            # refused at pids.max proves the count stood at the limit then.
            u.peak_pids = max(u.peak_pids, t.limits["pids_limit"])
        if u.oom_kills:
            t.handle.breaches.append(self._memory_breach(t, u.oom_kills, raw.get("memory_failcnt")))
        if u.pids_limit_hits:
            t.handle.breaches.append(LimitBreach(
                limit="pids", limit_value=t.limits["pids_limit"], observed=u.peak_pids,
                detail=f"{u.pids_limit_hits} fork(s) refused at pids.max"))
        for b in t.handle.breaches:
            self._audit("limit.breach", "High", sandbox=t.handle.name, limit=b.limit,
                            limit_value=b.limit_value, observed=b.observed, detail=b.detail)

    def _memory_breach(self, t: _Tracked, kills: int, own_failcnt: int | None) -> LimitBreach:
        """Name the limit that really ran out: the sandbox's own, or the environment's
        budget (the kill is counted in the sandbox's cgroup either way).

        A failed charge counted in the sandbox's own cgroup settles it, but kernels do
        not reliably count them (6.x here leaves failcnt at 0 at the limit), so a peak
        at the sandbox's limit counts as hitting it too.
        """
        own = t.limits["memory_bytes"]
        hit_own = bool(own_failcnt) or (own is not None and t.peak_memory >= 0.95 * own)
        if own is not None and hit_own:
            which = "singleton's memory limit (services.service_memory_bytes)" if t.shared else \
                "sandbox's memory limit"
            return LimitBreach(limit="memory", limit_value=own, observed=t.peak_memory,
                               detail=f"OOM killer ran {kills} time(s) at the {which}")
        if t.shared:
            group_peak = self.driver.read_usage(shared.GROUP).get("peak_memory", t.peak_memory)
            return LimitBreach(limit="memory", limit_value=self.config.resource_limits.services.memory_bytes,
                               observed=group_peak,
                               detail=f"OOM killer ran {kills} time(s) at the shared services' memory limit "
                                      f"(services.memory_bytes; this singleton peaked at {t.peak_memory} bytes)")
        budget = self.config.resource_limits.max_memory_usage_bytes
        env_peak = self.driver.read_usage(self.env_rel).get("peak_memory", t.peak_memory)
        return LimitBreach(limit="memory", limit_value=budget, observed=env_peak,
                           detail=f"OOM killer ran {kills} time(s) at the environment's memory budget "
                                  f"(max_memory_usage_bytes; this sandbox peaked at {t.peak_memory} bytes)")

    def _sample_loop(self) -> None:
        last_cpu: int | None = None
        last_t = time.monotonic()
        ncpu = os.cpu_count() or 1
        while not self._stop.wait(self._interval):
            with self._lock:
                tracked = list(self._live.values())
            for t in tracked:
                try:
                    self._fill_usage(t)
                except OSError:
                    pass
            env = self.driver.read_usage(self.env_rel)
            now = time.monotonic()
            cpu = env.get("cpu_ns")
            if cpu is not None and last_cpu is not None and now > last_t:
                pct = (cpu - last_cpu) / 1e9 / (now - last_t) / ncpu * 100
                self.peak_cpu_percent = max(self.peak_cpu_percent, round(pct, 1))
            last_cpu, last_t = cpu, now
            self.peak_memory_bytes = max(self.peak_memory_bytes, env.get("peak_memory", 0))

    def live_usage(self) -> list[tuple[SandboxHandle, dict[str, int]]]:
        """Each live sandbox's and service's cgroup counters, read now: what monitoring samples."""
        with self._lock:
            tracked = list(self._live.values())
        out = []
        for t in tracked:
            try:
                usage = self.driver.read_usage(t.rel)
            except OSError:
                continue  # removed between the listing and the read
            if usage.get("pids"):  # an empty cgroup: the sandbox has ended and is being removed
                out.append((t.handle, usage))
        return out

    def room_for(self, count: int) -> bool:
        """True when ``count`` more containers fit within max_container_count now."""
        with self._lock:
            in_use = len(self._live) + len(self._pending)
        return in_use + count <= self.config.resource_limits.max_container_count

    def report(self, used: list[tuple[str, str, int]] = ()) -> dict[str, Any]:
        """Current use against each budget of the environment, and the shared services it uses
        (outside the budget; see ``shared_services``)."""
        rl = self.config.resource_limits
        env = self.driver.read_usage(self.env_rel)
        with self._lock:
            count = len(self._live)
        return {
            "containers": {"used": count, "limit": rl.max_container_count},
            "memory_bytes": {"used": env.get("memory", 0), "peak": max(self.peak_memory_bytes,
                                                                        env.get("peak_memory", 0)),
                             "limit": rl.max_memory_usage_bytes},
            "cpu_percent": {"peak": self.peak_cpu_percent, "limit": rl.max_cpu_usage_percent},
            "cpu_seconds": env.get("cpu_ns", 0) / 1e9,
            "services": self.shared_services(list(used)),
        }

    def shared_services(self, used: list[tuple[str, str, int]]) -> dict[str, Any]:
        """The shared services an environment uses ((alias, container name, pid) each): the
        shared cgroup's and each one's use and limits, and any limit this policy sees differently
        (logged and audited once each: the creating policy's limits stand, it is not an error)."""
        report = shared.report(self.driver, self.config.resource_limits.services, used)
        new = sorted(set(shared.mismatches(report)) - self._told)
        if new:
            self._told.update(new)
            logger.warning("shared services run under limits other than this policy's", differences=new)
            self._audit("services.limits_mismatch", "Medium", differences=new)
        return report
