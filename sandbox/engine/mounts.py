"""Bind mounts of host paths: what the policy lets a sandbox see of the host.

Every check runs before anything is created, on the path as the kernel will resolve
it (``realpath``: symlinks and ``..`` followed), so a link that points out of an
allowed directory, or ``allowed/../etc``, is judged by where it lands. Refused: paths
outside ``allowed_mount_paths``, the root directory, device files, sockets and FIFOs,
any directory holding the Podman API socket (a sandbox with the engine's socket
controls the engine), writable mounts unless ``allow_writable_mounts``, and targets
that are relative, contain ``..`` or cover ``/``, ``/proc``, ``/sys`` or ``/dev``.
The resolved path is what goes to Podman, so a later change of the link is not followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sandbox.engine.podman.connection import candidate_urls
from sandbox.engine.types import Mount
from sandbox.errors import PolicyError

if TYPE_CHECKING:
    from sandbox.policy.config import CleanroomConfig

_KEY = "cleanroom.security_policy.allowed_mount_paths"
_WRITABLE_KEY = "cleanroom.security_policy.allow_writable_mounts"
_FORBIDDEN_TARGETS = ("/proc", "/sys", "/dev")


def parse_volume(text: str) -> Mount:
    """``SRC:DST[:ro|rw]`` as ``podman run -v`` spells it (read-only by default here)."""
    parts = text.split(":")
    if len(parts) == 2:
        return Mount(parts[0], parts[1])
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        return Mount(parts[0], parts[1], read_only=parts[2] == "ro")
    raise PolicyError(f"-v {text!r}: expected SRC:DST, SRC:DST:ro or SRC:DST:rw")


def allowed_roots(policy: CleanroomConfig, cwd: str | None = None) -> list[Path]:
    """The policy's allowed host paths, resolved (default: the current directory)."""
    base = Path(cwd or os.getcwd())
    entries = policy.security_policy.allowed_mount_paths
    if entries is None:
        entries = ["."]
    return [Path(os.path.realpath(base / Path(e).expanduser())) for e in entries]


def _refuse(policy: CleanroomConfig, message: str, key: str = _KEY, allowed: str | None = None) -> PolicyError:
    return PolicyError(message, file=policy.source_file, key=key, allowed=allowed)


def _check_target(policy: CleanroomConfig, mount: Mount) -> str:
    target = PurePosixPath(mount.target)
    if not target.is_absolute() or ".." in target.parts:
        raise _refuse(policy, f"mount target {mount.target!r} must be an absolute path without '..'")
    normal = str(target)
    if normal == "/" or any(normal == t or normal.startswith(t + "/") for t in _FORBIDDEN_TARGETS):
        raise _refuse(policy, f"mount target {normal!r} is not allowed: /, /proc, /sys and /dev are the sandbox's own")
    return normal


def _check_source(policy: CleanroomConfig, mount: Mount, roots: list[Path], sockets: Iterable[str],
                  cwd: str | None) -> str:
    given = Path(mount.source).expanduser()
    if not given.is_absolute():
        given = Path(cwd or os.getcwd()) / given
    try:
        real = Path(os.path.realpath(given, strict=True))
        mode = os.stat(real).st_mode
    except OSError as exc:
        raise _refuse(policy, f"mount source {mount.source!r} cannot be used: {exc.strerror}") from None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise _refuse(policy, f"mount source {mount.source!r} is a device file; devices are never mounted")
    if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
        raise _refuse(policy, f"mount source {mount.source!r} is a socket or FIFO; only files and directories "
                              "are mounted (the Podman socket would hand the sandbox the engine)")
    if real == Path("/"):
        raise _refuse(policy, "the host's root directory is never mounted")
    for sock in sockets:
        if Path(sock) == real or Path(sock).is_relative_to(real):
            raise _refuse(policy, f"mount source {mount.source!r} holds the Podman API socket ({sock}); "
                                  "a sandbox with that socket controls the engine")
    if not any(real == root or real.is_relative_to(root) for root in roots):
        shown = f" (it resolves to {real})" if str(real) != str(given) else ""
        raise _refuse(policy, f"mount source {mount.source!r}{shown} is outside the allowed paths",
                      allowed=", ".join(str(r) for r in roots))
    return str(real)


def engine_sockets(url: str) -> list[str]:
    """The engine's own socket and every other one it could be reached at (real paths):
    never mounted."""
    out = []
    for candidate in [url, *(u for u, _ in candidate_urls())]:
        if candidate.startswith("unix://"):
            path = candidate[len("unix://"):]
            if os.path.exists(path):
                out.append(os.path.realpath(path))
    return out


def check_mounts(policy: CleanroomConfig, mounts: Iterable[Mount], *, sockets: Iterable[str] = (),
                 cwd: str | None = None) -> list[Mount]:
    """The mounts with real host paths, or PolicyError naming the first refused one."""
    mounts = list(mounts)
    if not mounts:
        return []
    roots = allowed_roots(policy, cwd)
    sockets = list(sockets)
    out: list[Mount] = []
    seen: set[str] = set()
    for mount in mounts:
        target = _check_target(policy, mount)
        if target in seen:
            raise _refuse(policy, f"two mounts at {target}")
        seen.add(target)
        if not mount.read_only and not policy.security_policy.allow_writable_mounts:
            raise _refuse(policy, f"mount {mount.source!r} at {target} asks to be writable; the policy allows "
                                  "read-only mounts only", key=_WRITABLE_KEY, allowed="read_only=True (:ro)")
        out.append(Mount(_check_source(policy, mount, roots, sockets, cwd), target, mount.read_only))
    return out


def bind_entries(mounts: Iterable[Mount]) -> list[dict[str, Any]]:
    """libpod mount entries: recursive binds, never setuid binaries or device nodes."""
    return [{"destination": m.target, "type": "bind", "source": m.source,
             "options": ["rbind", "ro" if m.read_only else "rw", "nosuid", "nodev"]} for m in mounts]
