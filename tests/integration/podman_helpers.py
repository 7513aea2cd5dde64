"""Helpers shared by integration and security tests (real Podman)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
