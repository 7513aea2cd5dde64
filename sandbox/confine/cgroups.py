"""Cgroup drivers: one interface, a v1 (delegated subtree, via cgroupspy nodes) and a
v2 (unified hierarchy) implementation.

Rootless Podman ignores resource limits on cgroup v1, so cleanroom builds its own
hierarchy under the subtree root delegated to the user by setup:

    cleanroom.<user>/<environment-id>/<sandbox-name>

The environment cgroup carries the budget, each sandbox cgroup its own limits.
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

from cgroupspy.nodes import Node

CGROUP_ROOT = Path(os.environ.get("CLEANROOM_CGROUP_ROOT", "/sys/fs/cgroup"))
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "blkio")
CFS_PERIOD_US = 100_000


def subtree_name(user: str | None = None) -> str:
    return f"cleanroom.{user or getpass.getuser()}"


def detect_version(root: Path = CGROUP_ROOT) -> str:
    if (root / "cgroup.controllers").is_file():
        return "v2"
    if (root / "memory").is_dir():
        return "v1"
    return "none"


class CgroupError(Exception):
    pass


class CgroupDriver:
    """Create, limit, place into, read and remove cgroups at relative paths."""

    version = "none"

    def location(self) -> str: ...  # where the delegated subtree is, for messages

    def available(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def make(self, rel: str) -> None: ...
    def set_limits(self, rel: str, *, memory: int | None = None, memory_swap: int | None = None,
                   cpu_percent: float | None = None, pids: int | None = None,
                   io_weight: int | None = None) -> dict[str, object]: ...
    def place(self, rel: str, pid: int) -> None: ...
    def read_usage(self, rel: str) -> dict[str, int]: ...
    def remove(self, rel: str) -> None: ...
    def children(self, rel: str = "") -> list[str]: ...


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


class CgroupV1(CgroupDriver):
    version = "v1"

    def __init__(self, root: Path = CGROUP_ROOT, user: str | None = None) -> None:
        self.root = root
        self.base = subtree_name(user)
        # cgroupspy models the hierarchy: a controller root node per controller, then
        # our delegated subtree node, under which environments and sandboxes are made.
        top = Node(str(root).encode())
        self._nodes: dict[str, Node] = {}
        for c in V1_CONTROLLERS:
            ctl = Node(c.encode(), parent=top)
            self._nodes[c] = Node(self.base.encode(), parent=ctl)

    def _dir(self, controller: str, rel: str = "") -> Path:
        d = self.root / controller / self.base
        return d / rel if rel else d

    def available(self) -> bool:
        return all(os.access(self._dir(c), os.W_OK) for c in ("memory", "pids", "cpu", "cpuacct"))

    def location(self) -> str:
        return ", ".join(str(self._dir(c)) for c in ("memory", "pids", "cpu", "cpuacct"))

    def _node(self, controller: str, rel: str) -> Node:
        node = self._nodes[controller]
        for part in [p for p in rel.split("/") if p]:
            node = Node(part.encode(), parent=node)
        return node

    def make(self, rel: str) -> None:
        parts = [p for p in rel.split("/") if p]
        for c in V1_CONTROLLERS:
            if not self._dir(c).is_dir():
                continue
            node = Node(self.base.encode(), parent=self._nodes[c].parent)  # fresh: a removed child is no stale entry
            for part in parts:
                node = node.create_cgroup(part) if not (Path(node.full_path.decode()) / part).is_dir() \
                    else Node(part.encode(), parent=node)
        # Limits on a parent bind its children only with hierarchy accounting on.
        mem = self._dir("memory", rel) / "memory.use_hierarchy"
        if mem.exists() and _read_int(mem) == 0:
            try:
                _write(mem, 1)
            except OSError:
                pass

    def set_limits(self, rel, *, memory=None, memory_swap=None, cpu_percent=None, pids=None, io_weight=None):
        applied: dict[str, object] = {}
        mem = self._node("memory", rel).controller
        if memory is not None:
            # memsw must stay >= memory: raise it first when it would fall below.
            memsw_path = self._dir("memory", rel) / "memory.memsw.limit_in_bytes"
            swap = memory_swap if memory_swap is not None else memory
            if memsw_path.exists():
                current = _read_int(memsw_path) or 0
                if swap > current:
                    mem.memsw_limit_in_bytes = swap
                    mem.limit_in_bytes = memory
                else:
                    mem.limit_in_bytes = memory
                    mem.memsw_limit_in_bytes = swap
                applied["memory.memsw.limit_in_bytes"] = mem.memsw_limit_in_bytes
            else:
                mem.limit_in_bytes = memory
            applied["memory.limit_in_bytes"] = mem.limit_in_bytes
        if cpu_percent is not None:
            cpu = self._node("cpu", rel).controller
            cpu.cfs_period_us = CFS_PERIOD_US
            cpu.cfs_quota_us = max(1000, int(CFS_PERIOD_US * cpu_percent / 100))
            applied["cpu.cfs_quota_us"] = cpu.cfs_quota_us
        if pids is not None:
            path = self._dir("pids", rel) / "pids.max"
            _write(path, pids)
            applied["pids.max"] = _read_int(path)
        if io_weight is not None:
            # CFQ kernels have blkio.weight, BFQ ones blkio.bfq.weight; either only
            # matters while that scheduler drives the disk, which the read-back says.
            d = self._dir("blkio", rel)
            path = next((d / n for n in ("blkio.weight", "blkio.bfq.weight") if (d / n).exists()), None)
            if path is None:
                applied["blkio.weight"] = "not available on this host"
            else:
                try:
                    _write(path, io_weight)
                    applied[path.name] = _read_int(path)
                    applied["io_schedulers"] = _schedulers()
                except OSError as exc:
                    applied[path.name] = f"not applied: {exc.strerror}"
        return applied

    def place(self, rel: str, pid: int) -> None:
        for c in V1_CONTROLLERS:
            d = self._dir(c, rel)
            if not d.is_dir():
                continue
            try:
                _write(d / "cgroup.procs", pid)
            except OSError as exc:
                if c == "blkio":  # optional controller
                    continue
                hint = ""
                if exc.errno == 13:
                    hint = ("; on cgroup v1 only processes running as this user can be placed: start the "
                            "container as its root user and drop privileges inside (e.g. setpriv)")
                raise CgroupError(f"cannot move pid {pid} into {d}: {exc.strerror}{hint}") from None
        # Verify from the process's own view, not from what we wrote.
        want = f"/{self.base}/{rel}"
        seen = _proc_cgroups(pid)
        for c in ("memory", "pids", "cpu", "cpuacct"):
            if not any(c in ctrls.split(",") and path == want for ctrls, path in seen):
                raise CgroupError(f"pid {pid} is not in {c}:{want} after placement (it is in {seen})")

    def read_usage(self, rel: str) -> dict[str, int]:
        out: dict[str, int] = {}
        m = self._dir("memory", rel)
        for name, key in (("memory.max_usage_in_bytes", "peak_memory"), ("memory.usage_in_bytes", "memory"),
                          ("memory.failcnt", "memory_failcnt"), ("memory.limit_in_bytes", "memory_limit")):
            v = _read_int(m / name)
            if v is not None:
                out[key] = v
        # With memory+swap limited too, it is often that counter which refuses the charge.
        memsw_fail = _read_int(m / "memory.memsw.failcnt")
        if memsw_fail:
            out["memory_failcnt"] = out.get("memory_failcnt", 0) + memsw_fail
        out["oom_kills"] = _read_kv(m / "memory.oom_control").get("oom_kill", 0)
        p = self._dir("pids", rel)
        for name, key in (("pids.current", "pids"), ("pids.peak", "peak_pids"), ("pids.max", "pids_limit")):
            v = _read_int(p / name)
            if v is not None:
                out[key] = v
        out["pids_limit_hits"] = _read_kv(p / "pids.events").get("max", 0)
        v = _read_int(self._dir("cpuacct", rel) / "cpuacct.usage")
        if v is not None:
            out["cpu_ns"] = v
        quota = _read_int(self._dir("cpu", rel) / "cpu.cfs_quota_us")
        if quota is not None and quota > 0:
            out["cpu_quota_us"] = quota
        return out

    def tasks(self, rel: str) -> list[int]:
        try:
            return [int(x) for x in (self._dir("pids", rel) / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, rel: str, timeout: float = 5.0) -> None:
        """rmdir in every controller; a cgroup empties a moment after its tasks exit."""
        deadline = time.monotonic() + timeout
        for c in V1_CONTROLLERS:
            _rmdir_when_empty(self._dir(c, rel), deadline)

    def children(self, rel: str = "") -> list[str]:
        d = self._dir("memory", rel)
        try:
            return sorted(p.name for p in d.iterdir() if p.is_dir())
        except OSError:
            return []


class CgroupV2(CgroupDriver):
    """The unified hierarchy under a delegated cleanroom.<user> directory."""

    version = "v2"

    def __init__(self, root: Path = CGROUP_ROOT, user: str | None = None) -> None:
        self.root = root
        self.base = root / subtree_name(user)

    def available(self) -> bool:
        return self.base.is_dir() and os.access(self.base, os.W_OK)

    def location(self) -> str:
        return str(self.base)

    def make(self, rel: str) -> None:
        d = self.base
        for part in [p for p in rel.split("/") if p]:
            # Controllers must be enabled on the parent before a child can use them.
            ctl = d / "cgroup.subtree_control"
            wanted = [c for c in ("memory", "pids", "cpu", "io")
                      if c in (d / "cgroup.controllers").read_text().split()]
            if wanted and ctl.exists():
                try:
                    _write(ctl, " ".join(f"+{c}" for c in wanted))
                except OSError:
                    pass
            d = d / part
            d.mkdir(exist_ok=True)

    def set_limits(self, rel, *, memory=None, memory_swap=None, cpu_percent=None, pids=None, io_weight=None):
        d = self.base / rel
        applied: dict[str, object] = {}
        if memory is not None:
            _write(d / "memory.max", memory)
            applied["memory.max"] = _read_int(d / "memory.max")
            if (d / "memory.swap.max").exists():
                swap = max(0, (memory_swap if memory_swap is not None else memory) - memory)
                _write(d / "memory.swap.max", swap)
                applied["memory.swap.max"] = _read_int(d / "memory.swap.max")
        if cpu_percent is not None:
            _write(d / "cpu.max", f"{max(1000, int(CFS_PERIOD_US * cpu_percent / 100))} {CFS_PERIOD_US}")
            applied["cpu.max"] = (d / "cpu.max").read_text().strip()
        if pids is not None:
            _write(d / "pids.max", pids)
            applied["pids.max"] = _read_int(d / "pids.max")
        if io_weight is not None and (d / "io.weight").exists():
            _write(d / "io.weight", f"default {io_weight}")
            applied["io.weight"] = (d / "io.weight").read_text().strip()
        return applied

    def place(self, rel: str, pid: int) -> None:
        d = self.base / rel
        try:
            _write(d / "cgroup.procs", pid)
        except OSError as exc:
            raise CgroupError(f"cannot move pid {pid} into {d}: {exc.strerror}") from None
        want = "/" + str(d.relative_to(self.root))
        if not any(ctrls == "" and path == want for ctrls, path in _proc_cgroups(pid)):
            raise CgroupError(f"pid {pid} is not in {want} after placement")

    def read_usage(self, rel: str) -> dict[str, int]:
        d = self.base / rel
        out: dict[str, int] = {}
        for name, key in (("memory.peak", "peak_memory"), ("memory.current", "memory"),
                          ("memory.max", "memory_limit"), ("pids.current", "pids"), ("pids.peak", "peak_pids"),
                          ("pids.max", "pids_limit")):
            v = _read_int(d / name)
            if v is not None:
                out[key] = v
        events = _read_kv(d / "memory.events")
        out["oom_kills"] = events.get("oom_kill", 0)
        if "max" in events:  # v2's count of charges refused at memory.max (v1: memory.failcnt)
            out["memory_failcnt"] = events["max"]
        out["pids_limit_hits"] = _read_kv(d / "pids.events").get("max", 0)
        usage = _read_kv(d / "cpu.stat").get("usage_usec")
        if usage is not None:
            out["cpu_ns"] = usage * 1000
        try:
            quota = (d / "cpu.max").read_text().split()[0]
            if quota != "max":
                out["cpu_quota_us"] = int(quota)
        except (OSError, IndexError, ValueError):
            pass
        return out

    def tasks(self, rel: str) -> list[int]:
        try:
            return [int(x) for x in (self.base / rel / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self, rel: str, timeout: float = 5.0) -> None:
        _rmdir_when_empty(self.base / rel, time.monotonic() + timeout)

    def children(self, rel: str = "") -> list[str]:
        d = self.base / rel if rel else self.base
        try:
            return sorted(p.name for p in d.iterdir() if p.is_dir())
        except OSError:
            return []


def _schedulers() -> dict[str, str]:
    """The active I/O scheduler of each disk, e.g. {"vda": "mq-deadline"}."""
    out = {}
    for q in Path("/sys/block").glob("*/queue/scheduler"):
        if q.parent.parent.name.startswith(("loop", "ram", "zram")):
            continue  # not disks a sandbox's data lands on
        text = q.read_text()
        if "[" in text:
            out[q.parent.parent.name] = text.split("[", 1)[1].split("]", 1)[0]
    return out


def _rmdir_when_empty(d: Path, deadline: float) -> None:
    """A cgroup empties a moment after its last task exits; retry rmdir until then."""
    delay = 0.002
    while d.is_dir():
        try:
            d.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise CgroupError(f"cannot remove {d}: {exc.strerror}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _proc_cgroups(pid: int) -> list[tuple[str, str]]:
    """(controllers, path) pairs from /proc/PID/cgroup."""
    out = []
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            out.append((ctrls, path))
    except OSError:
        pass
    return out


def make_driver(root: Path = CGROUP_ROOT, user: str | None = None) -> CgroupDriver | None:
    version = detect_version(root)
    if version == "v1":
        return CgroupV1(root, user)
    if version == "v2":
        return CgroupV2(root, user)
    return None
