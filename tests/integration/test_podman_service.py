"""Containers outlive the Podman API service: kill the service, restart it the way set-up
does (scripts/podman-service.sh, which setup-host.sh calls), and the container is still
running, unrestarted and answering. The PID file holds the process that serves the socket.

The test runs its own service on its own socket and PID file: the shared service other
runs use is never touched. Containers live in the user's shared storage either way, so a
second service sees and manages them exactly as the first did.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from podman import PodmanClient
from podman_helpers import BUSYBOX, REPO

SCRIPT = REPO / "scripts" / "podman-service.sh"
USER = os.environ.get("CLEANROOM_USER", "cleanroom")


def _runtime_dir() -> Path:
    # As root the script acts for the cleanroom user, in that user's runtime directory.
    if os.geteuid() == 0:
        return Path(f"/run/user/{pwd.getpwnam(USER).pw_uid}")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")


def socket_holder(sock: Path) -> int | None:
    """The PID holding the listening socket, read from /proc without the script's help."""
    inode = None
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(sock) and fields[3] == "00010000":
            inode = fields[6]
    if inode is None:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(proc.name)
            except OSError:
                continue
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as resp:
        return resp.read().decode()


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def service(tmp_path):
    runtime = _runtime_dir()
    sock = runtime / "podman" / f"test-restart-{os.getpid()}.sock"
    pidfile = runtime / "podman" / f"test-restart-{os.getpid()}.pid"
    env = dict(os.environ, PODMAN_SOCK=str(sock), PODMAN_PIDFILE=str(pidfile),
               PODMAN_SERVICE_LOG=str(runtime / "podman" / f"test-restart-{os.getpid()}.log"))

    def run(cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), cmd], env=env, capture_output=True, text=True, timeout=90)

    run.sock, run.pidfile = sock, pidfile
    yield run
    # Stop whatever service this test left, by its recorded PID only.
    run("stop")
    for path in (pidfile, Path(env["PODMAN_SERVICE_LOG"])):
        path.unlink(missing_ok=True)


def recorded(service) -> int:
    return int(service.pidfile.read_text().strip())


def test_a_container_outlives_the_service_and_a_restart(service):
    started = service("start")
    assert started.returncode == 0, started.stderr
    first = recorded(service)
    # The PID file names the process that serves the socket, not a wrapper around it.
    assert socket_holder(service.sock) == first
    assert Path(f"/proc/{first}/comm").read_text().strip() == "podman"

    port = free_port()
    name = f"cleanroom-restart-test-{os.getpid()}"
    url = f"unix://{service.sock}"
    with PodmanClient(base_url=url) as client:
        ctr = client.containers.create(
            BUSYBOX, ["/bin/sh", "-c", "mkdir -p /tmp/www && echo alive > /tmp/www/index.html && "
                                       "exec /bin/httpd -f -p 8080 -h /tmp/www"],
            name=name, labels={"io.cleanroom.test": "service-restart"},
            ports={"8080/tcp": ("127.0.0.1", port)})
        try:
            ctr.start()
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert http_get(port) == "alive\n"
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            ctr.reload()
            started_at = ctr.attrs["State"]["StartedAt"]

            # The service dies hard (a crash, an OOM kill): nothing of it may take the container along.
            os.kill(first, signal.SIGKILL)
            assert wait_gone(first)
            assert service("status").returncode == 1
            assert http_get(port) == "alive\n"

            # Restarted the way set-up restarts it: a new service, no migrate, nothing stopped.
            again = service("start")
            assert again.returncode == 0, again.stderr
            assert "migrate" not in again.stderr
            second = recorded(service)
            assert second != first and socket_holder(service.sock) == second
            assert service("status").returncode == 0

            with PodmanClient(base_url=url) as fresh:
                same = fresh.containers.get(name)
                assert same.attrs["State"]["Running"] is True
                assert same.attrs["State"]["StartedAt"] == started_at  # not restarted: the same run
                code, (out, _) = same.exec_run(["/bin/cat", "/tmp/www/index.html"], demux=True)
                assert code == 0 and out == b"alive\n"  # the new service manages it
            assert http_get(port) == "alive\n"  # and it still answers from outside
        finally:
            with PodmanClient(base_url=url) as cleanup:
                cleanup.containers.get(name).remove(force=True)

    # Stopping by the PID file stops the process that served the socket.
    stopped = service("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(second) and socket_holder(service.sock) is None


def test_start_is_idempotent_and_corrects_a_stale_pid_file(service):
    assert service("start").returncode == 0
    pid = recorded(service)
    assert service("start").returncode == 0 and recorded(service) == pid  # no second service
    service.pidfile.write_text("1\n")  # e.g. a wrapper's PID, or a stale one
    assert service("status").returncode == 1
    fixed = service("start")
    assert fixed.returncode == 0 and "PID file corrected" in fixed.stderr
    assert recorded(service) == pid == socket_holder(service.sock)
