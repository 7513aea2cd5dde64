"""The Podman API service never depends on the directory it was started from: conmon
inherits the service's working directory, and once that directory is gone every
container start fails ("Failed to get working directory"). Seen when a service started
from a checkout outlived the checkout. Real Podman, a service on a socket of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psutil
from podman_helpers import BUSYBOX, REPO

from sandbox import CleanroomConfig, CleanroomEnvironment


def test_a_service_started_from_a_directory_that_goes_away_still_runs_sandboxes(tmp_path):
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    sock = runtime / "podman" / f"cwd-{os.getpid()}.sock"
    pidfile = tmp_path / "service.pid"
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    env = {**os.environ, "PODMAN_SOCK": str(sock), "PODMAN_PIDFILE": str(pidfile),
           "PODMAN_SERVICE_LOG": str(tmp_path / "service.log")}
    script = str(REPO / "scripts" / "podman-service.sh")
    started = subprocess.run(["bash", script, "start"], cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stderr
    try:
        pid = int(pidfile.read_text().strip())
        assert psutil.Process(pid).cwd() == "/"
        shutil.rmtree(workdir)
        with CleanroomEnvironment(CleanroomConfig.default(), url=f"unix://{sock}", audit_dir=tmp_path / "a") as cr:
            r = cr.run(BUSYBOX, ["/bin/echo", "still runs"])
        assert r.exit_code == 0 and r.stdout == "still runs\n"
    finally:
        stopped = subprocess.run(["bash", script, "stop"], cwd="/", env=env, capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        sock.unlink(missing_ok=True)
