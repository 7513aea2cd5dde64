"""Integration tests run against the real rootless Podman API service.

There is no skip here on purpose: `make test` sets the service up, so a missing
engine is a failure that must be seen, with EngineUnavailable's fix in the message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "localhost/cleanroom/busybox:latest"
SERVICES = "localhost/cleanroom/services:bookworm"


@pytest.fixture(scope="session")
def podman_url() -> str:
    from sandbox.engine.connection import resolve_url

    return resolve_url()


@pytest.fixture(scope="session")
def podman_api(podman_url):
    from podman import PodmanClient

    with PodmanClient(base_url=podman_url) as client:
        yield client.api


def containers_with_label(api, label: str) -> list[dict]:
    filters = json.dumps({"label": [label]})
    return api.get("/containers/json", params={"all": True, "filters": filters}).json() or []


def cleanroom_cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, **kw)
