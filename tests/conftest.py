"""Suite-wide settings and the fixtures integration and security tests share.

Tests that need Podman get no skip here on purpose: `make test` sets the service up,
so a missing engine is a failure that must be seen, with EngineUnavailable's fix in
the message.
"""

import pytest
from hypothesis import settings

# The suite may run from a checkout the test user cannot write; keep examples in memory.
settings.register_profile("cleanroom", database=None)
settings.load_profile("cleanroom")


@pytest.fixture(scope="session")
def podman_url() -> str:
    from sandbox.engine.podman.connection import resolve_url

    return resolve_url()


@pytest.fixture(scope="session")
def podman_api(podman_url):
    from podman import PodmanClient

    with PodmanClient(base_url=podman_url) as client:
        yield client.api
