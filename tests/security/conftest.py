"""Integration tests run against the real rootless Podman API service.

There is no skip here on purpose: `make test` sets the service up, so a missing
engine is a failure that must be seen, with EngineUnavailable's fix in the message.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def podman_url() -> str:
    from sandbox.engine.connection import resolve_url

    return resolve_url()


@pytest.fixture(scope="session")
def podman_api(podman_url):
    from podman import PodmanClient

    with PodmanClient(base_url=podman_url) as client:
        yield client.api
