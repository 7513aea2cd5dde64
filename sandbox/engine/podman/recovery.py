"""The Podman API service cleanroom's set-up manages, and restarting it when it died.

A service counts as managed when its socket is the one the set-up recorded
(``/etc/cleanroom/podman-socket``) and the set-up's PID file is ours to rewrite, or
when ``CLEANROOM_MANAGED_SOCKET`` and ``CLEANROOM_MANAGED_PIDFILE`` name one. Only a
managed service is restarted: any other belongs to someone else, and the error says
how to start it instead. Restarting never runs ``podman system migrate``: containers
outlive the service (they run under conmon in the user namespace the pause process
keeps), and migrate would stop every one of them.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import msgspec
import psutil
from loguru import logger

from sandbox.engine.podman.connection import SETUP_SOCKET_FILE, probe

SETUP_PIDFILE = Path("/run/cleanroom/podman-service.pid")
_START_TIMEOUT = 20.0


class ManagedService(msgspec.Struct, frozen=True):
    url: str  # unix:///…/podman.sock
    pidfile: str


def _socket_path(url: str) -> str:
    return url.removeprefix("unix://")


def managed_service(url: str) -> ManagedService | None:
    """The managed service behind ``url``, or None when cleanroom does not manage it."""
    sock = os.environ.get("CLEANROOM_MANAGED_SOCKET")
    pidfile = os.environ.get("CLEANROOM_MANAGED_PIDFILE")
    if not (sock and pidfile):
        try:
            sock = SETUP_SOCKET_FILE.read_text().strip()
        except OSError:
            return None
        pidfile = str(SETUP_PIDFILE)
    if not url.startswith("unix://") or _socket_path(url) != _socket_path(sock):
        return None
    if not os.access(pidfile, os.W_OK):
        return None
    return ManagedService(url=url, pidfile=pidfile)


def _serving_pid(url: str) -> int | None:
    """The podman process serving ``url``: rootless podman re-executes itself inside its
    user namespace, so of the two matching processes the inner one (a match whose
    parent matches too) is the server."""
    mine = []
    for proc in psutil.process_iter(["pid", "ppid", "uids", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["uids"] and proc.info["uids"].real == os.getuid() and "service" in cmd and url in cmd:
            mine.append(proc.info)
    pids = {p["pid"] for p in mine}
    inner = [p["pid"] for p in mine if p["ppid"] in pids]
    found: list[int] = inner or sorted(pids)
    return found[0] if found else None


def restart(service: ManagedService) -> int:
    """Start the service again on its socket, detached from us; returns the serving PID."""
    path = _socket_path(service.url)
    if os.path.exists(path) and probe(service.url) is not None:
        os.unlink(path)  # a dead service's socket file: podman refuses to bind over it
    log_path = Path.home() / ".local" / "state" / "cleanroom" / "podman-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # setsid -f: the service is nobody's child here, so it outlives this process. cwd /:
        # conmon inherits the service's directory and fails every container once it is gone.
        subprocess.run(["setsid", "-f", "podman", "system", "service", "--time=0", service.url],
                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True, timeout=_START_TIMEOUT, cwd="/")
    deadline = time.monotonic() + _START_TIMEOUT
    while probe(service.url) is not None:
        if time.monotonic() > deadline:
            raise OSError(f"the restarted service did not answer on {service.url} within {_START_TIMEOUT:g} s "
                          f"(see {log_path})")
        time.sleep(0.05)
    pid = _serving_pid(service.url)
    if pid is not None:
        Path(service.pidfile).write_text(f"{pid}\n")
    logger.warning("Podman API service restarted", url=service.url, pid=pid)
    return pid or 0
