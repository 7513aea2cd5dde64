"""Helpers shared by integration and security tests (real Podman)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.engine.teardown.ownership import LABEL_OWNER_PID

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "localhost/cleanroom/busybox:latest"
SERVICES = "localhost/cleanroom/services:bookworm"
PYTHON = "localhost/cleanroom/python:bookworm"


def containers_with_label(api, label: str) -> list[dict]:
    filters = json.dumps({"label": [label]})
    return api.get("/containers/json", params={"all": True, "filters": filters}).json() or []


def cleanroom_cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, **kw)


def assert_sigterm_removes_its_container(proc: subprocess.Popen, api, ready: str) -> None:
    """``proc`` prints ``ready`` with exactly one container of its own running; SIGTERM
    must end it within 20 s with that container removed. ``proc`` is killed if it hangs."""
    try:
        line = proc.stdout.readline().strip()
        if line != ready and proc.poll() is None:
            proc.kill()  # so its stderr can be read to the end for the message
        assert line == ready, proc.stderr.read() if proc.stderr else line
        mine = f"{LABEL_OWNER_PID}={proc.pid}"
        assert len(containers_with_label(api, mine)) == 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert containers_with_label(api, mine) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
