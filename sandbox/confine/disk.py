"""Disk: what sandboxes may write, within the environment's budget and their own share.

Everything a sandbox can write counts. Its size-limited tmpfs mounts are hard limits
the kernel enforces, reserved in full from the environment's budget
(``max_disk_usage_bytes``) before the sandbox is created; a sandbox that cannot fit
is refused then. A writable root's container layer cannot be capped by rootless Podman
on this filesystem, so it is watched: its size (Podman's SizeRw) is read every sampling
interval, and a sandbox past its own share (``sandbox.disk_bytes``) or past what is
left of the budget is killed within one interval, with a ``disk`` breach.

Writable bind mounts count too: what their host directories grew by since the sandbox
was created (apparent file sizes, each inode once) is added to its layer's size, read
at the same interval and judged by the same share and budget. What a sandbox writes in
a directory of a mount that the engine's user cannot read (a non-root user's 0700
directory, say) cannot be seen from the host, and is not counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from sandbox.engine.types import AuditFn, ConfinerBase, CreateRequest, LimitBreach, SandboxHandle
from sandbox.errors import CleanroomError, ResourceLimitExceeded
from sandbox.policy.isolation import tmpfs_sizes

_FLOOR, _CEILING = 0.1, 1.0  # seconds between size reads while a layer is watched


def tree_bytes(path: str) -> int:
    """Apparent size of the files under ``path`` (links not followed, each inode once);
    what cannot be read is skipped."""
    if os.path.isfile(path):  # a single writable file mounted
        return os.stat(path).st_size
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def writable_mounts(request: CreateRequest) -> list[str]:
    """Each writable bind mount's host path, as the mount check resolves it."""
    return sorted({os.path.realpath(Path(m.source).expanduser()) for m in request.mounts if not m.read_only})


class _Watched:
    def __init__(self, handle: SandboxHandle, share: int | None, layer: bool, mounts: dict[str, int]) -> None:
        self.handle = handle
        self.share = share
        self.layer = layer  # a writable root: its container layer is read too
        self.mounts = mounts  # writable mount → its size when the sandbox was created
        self.peak = 0
        self.breach: LimitBreach | None = None

    def written(self, size_of: Callable[[str], int]) -> int:
        grown = sum(max(0, tree_bytes(p) - base) for p, base in self.mounts.items())
        return (size_of(self.handle.id) if self.layer else 0) + grown


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
        self._mounts: dict[str, list[str]] = {}  # sandbox name → its writable mounts' host paths
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
        mounts = writable_mounts(request)  # measured after init: by then the mount check has passed them
        if mounts:
            with self._lock:
                self._mounts[request.name] = mounts

    def create_failed(self, request: CreateRequest) -> None:
        with self._lock:
            self._reserved.pop(request.name, None)
            self._mounts.pop(request.name, None)

    def after_init(self, handle: SandboxHandle) -> None:
        layer = not tmpfs_sizes(self.config, None)  # a read-only root's tmpfs mounts are hard limits
        with self._lock:
            paths = self._mounts.pop(handle.name, [])
        if not layer and not paths:
            return  # nothing the kernel does not already cap
        mounts = {p: tree_bytes(p) for p in paths}  # the command has not run: nothing of it written yet
        share = self.config.resource_limits.sandbox.disk_bytes
        with self._lock:
            self._watched[handle.id] = _Watched(handle, int(share) if share else None, layer, mounts)
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
            self._mounts.pop(handle.name, None)
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
            size = w.written(self._size_of)
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
        where = " and ".join(["its container layer"] * w.layer + ["its writable mounts"] * bool(w.mounts))
        w.breach = LimitBreach(limit="disk", limit_value=limit, observed=size,
                               detail=f"wrote {size} bytes to {where}, past {which}; killed")
        w.handle.breaches.append(w.breach)
        self._audit("limit.breach", "High", sandbox=w.handle.name, limit="disk", limit_value=limit, observed=size,
                    detail=w.breach.detail)
        try:
            self._kill(w.handle.id)
        except CleanroomError as exc:
            logger.warning("could not stop a sandbox past its disk share", sandbox=w.handle.name, error=str(exc))
