"""Disk: what sandboxes may write, within the environment's budget and their own share.

Everything a sandbox can write counts. Its size-limited tmpfs mounts are hard limits
the kernel enforces, reserved in full from the environment's budget
(``max_disk_usage_bytes``) before the sandbox is created; a sandbox that cannot fit
is refused then. A writable root's container layer cannot be capped by rootless Podman
on this filesystem, so it is watched: its size (Podman's SizeRw) is read every sampling
interval, and a sandbox past its own share (``sandbox.disk_bytes``) or past what is
left of the budget is killed within one interval, with a ``disk`` breach.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.engine.types import AuditFn, ConfinerBase, CreateRequest, LimitBreach, SandboxHandle
from sandbox.errors import CleanroomError, ResourceLimitExceeded
from sandbox.policy.isolation import tmpfs_sizes

_FLOOR, _CEILING = 0.1, 1.0  # seconds between size reads while a layer is watched


class _Watched:
    def __init__(self, handle: SandboxHandle, share: int | None) -> None:
        self.handle = handle
        self.share = share
        self.peak = 0
        self.breach: LimitBreach | None = None


class DiskConfiner(ConfinerBase):
    def __init__(self, config: Any, *, size_of: Callable[[str], int], kill: Callable[[str], None],
                 audit: AuditFn) -> None:
        self.config = config
        self._size_of = size_of
        self._kill = kill
        self._audit = audit
        self._budget = int(config.resource_limits.max_disk_usage_bytes)
        self._lock = threading.Lock()
        self._reserved: dict[str, int] = {}  # sandbox name → tmpfs bytes held for it
        self._watched: dict[str, _Watched] = {}  # container id → its layer
        interval = float(config.performance_monitoring.metrics_interval)
        self._interval = min(max(interval, _FLOOR), _CEILING)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- engine hooks ---------------------------------------------------------------
    def before_create(self, request: CreateRequest) -> None:
        need = sum(tmpfs_sizes(self.config, request.writable_paths).values())
        with self._lock:
            held = sum(self._reserved.values()) + sum(w.peak for w in self._watched.values())
            if held + need > self._budget:
                raise ResourceLimitExceeded(
                    "disk", self._budget, held + need, request.name,
                    f"max_disk_usage_bytes: {need} bytes of tmpfs would not fit beside the {held} bytes the "
                    "environment's sandboxes hold; the sandbox was not created")
            self._reserved[request.name] = need

    def create_failed(self, request: CreateRequest) -> None:
        with self._lock:
            self._reserved.pop(request.name, None)

    def after_init(self, handle: SandboxHandle) -> None:
        if tmpfs_sizes(self.config, None):
            return  # a read-only root: its tmpfs mounts are hard limits, nothing to watch
        share = self.config.resource_limits.sandbox.disk_bytes
        with self._lock:
            self._watched[handle.id] = _Watched(handle, int(share) if share else None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="cleanroom-disk", daemon=True)
                self._thread.start()

    def after_exit(self, handle: SandboxHandle) -> None:
        with self._lock:
            w = self._watched.get(handle.id)
        if w is not None:
            self._check(w)
            handle.usage.peak_disk_bytes = w.peak

    def release(self, handle: SandboxHandle) -> None:
        with self._lock:
            self._reserved.pop(handle.name, None)
            self._watched.pop(handle.id, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    # -- watching -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                watched = list(self._watched.values())
            for w in watched:
                self._check(w)

    def _check(self, w: _Watched) -> None:
        try:
            size = self._size_of(w.handle.id)
        except CleanroomError as exc:  # removed meanwhile, or the service is busy: next round
            logger.debug("disk size read failed", sandbox=w.handle.name, error=str(exc))
            return
        with self._lock:
            w.peak = max(w.peak, size)
            others = sum(self._reserved.values()) + sum(o.peak for o in self._watched.values() if o is not w)
        left = max(0, self._budget - others)
        limit, which = (w.share, "its disk_bytes share") if w.share is not None and w.share <= left else \
            (left, "what is left of max_disk_usage_bytes")
        if size <= limit or w.breach is not None:
            return
        w.breach = LimitBreach(limit="disk", limit_value=limit, observed=size,
                               detail=f"wrote {size} bytes to its container layer, past {which}; killed")
        w.handle.breaches.append(w.breach)
        self._audit("limit.breach", "High", sandbox=w.handle.name, limit="disk", limit_value=limit, observed=size,
                    detail=w.breach.detail)
        try:
            self._kill(w.handle.id)
        except CleanroomError as exc:
            logger.warning("could not stop a sandbox past its disk share", sandbox=w.handle.name, error=str(exc))
