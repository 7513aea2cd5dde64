"""The static binary cleanroom mounts read-only into sandboxes, so that no image has
to contain anything: cleanroom-helper (``helper/cleanroom_helper.c``), which drops to a
non-root user, receives a warm sandbox's command, and is a session's agent. It must be
static: a dynamic binary would load the image's libc, or fail where there is none.

cleanroom-helper is built once per source version with ``gcc -static`` into the
user's cache (``CLEANROOM_HELPER`` names a prebuilt one instead).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

from sandbox.errors import ContainerError

HELPER_SOURCE = Path(__file__).resolve().parent / "cleanroom_helper.c"
# Where it appears inside a sandbox (a bind-mounted file; Podman makes the mount point).
HELPER_TARGET = "/.cleanroom/helper"
_PT_INTERP = 3
_lock = threading.Lock()


def command_request(argv: list[str], env: dict[str, str] | None = None) -> bytes:
    """What ``cleanroom-helper -R`` reads on stdin before the command's own stdin:
    "CRR1", a big-endian length, then NUL-terminated strings (argument count, the
    arguments, NAME=VALUE entries)."""
    if not argv:
        raise ContainerError("no command to hand to the sandbox")
    fields = [str(len(argv)), *argv, *(f"{k}={v}" for k, v in (env or {}).items())]
    for field in fields:
        if "\0" in field:
            raise ContainerError("a command argument or environment value contains a NUL byte")
    payload = b"".join(f.encode() + b"\0" for f in fields)
    return b"CRR1" + struct.pack(">I", len(payload)) + payload


def is_static(path: str | os.PathLike[str]) -> bool:
    """True for an ELF executable without a program interpreter (no dynamic loader)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            order = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(order + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from(order + "I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cleanroom"


def helper() -> str:
    """The static cleanroom-helper, built on first use."""
    explicit = os.environ.get("CLEANROOM_HELPER")
    if explicit:
        if not is_static(explicit):
            raise ContainerError(f"CLEANROOM_HELPER={explicit} is not a static executable")
        return explicit
    digest = hashlib.sha256(HELPER_SOURCE.read_bytes()).hexdigest()[:16]
    target = _cache_dir() / f"cleanroom-helper-{digest}"
    with _lock:
        if not target.is_file():
            _build(target)
    return str(target)


def _build(target: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ContainerError("cleanroom-helper must be built once with gcc -static: apt-get install gcc libc6-dev "
                             "(scripts/setup-host.sh does), or set CLEANROOM_HELPER to a prebuilt static binary")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".helper-")
    os.close(fd)
    try:
        proc = subprocess.run([gcc, "-static", "-O2", "-o", tmp, str(HELPER_SOURCE)], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0 or not is_static(tmp):
            raise ContainerError(f"building cleanroom-helper failed: {proc.stderr.strip()[:500]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)  # atomic: a concurrent build simply wins or loses whole
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
