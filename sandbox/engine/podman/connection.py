"""Find a Podman API service that answers, or say precisely why none did.

Order (first that answers wins): an explicit URL, ``CONTAINER_HOST``, the user's
rootless socket under ``$XDG_RUNTIME_DIR``, then the socket recorded by
``scripts/setup-host.sh`` in ``/etc/cleanroom/podman-socket``.
"""

from __future__ import annotations

import os
from pathlib import Path

from loguru import logger
from podman import PodmanClient

from sandbox.errors import EngineUnavailable

SETUP_SOCKET_FILE = Path("/etc/cleanroom/podman-socket")

# podman's libpod API is versioned in the path; 4.0.0 is understood by 4.x and 5.x.
_PING_TIMEOUT = 3.0


def _normalise(url: str) -> str:
    if url.startswith("/"):
        return "unix://" + url
    return url


def candidate_urls(explicit: str | None = None) -> list[tuple[str, str]]:
    """(url, where it came from) in the order they are tried."""
    out: list[tuple[str, str]] = []
    if explicit:
        out.append((_normalise(explicit), "explicit url"))
    env_host = os.environ.get("CONTAINER_HOST")
    if env_host:
        out.append((_normalise(env_host), "CONTAINER_HOST"))
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    out.append((f"unix://{runtime_dir}/podman/podman.sock", "rootless socket"))
    try:
        recorded = SETUP_SOCKET_FILE.read_text().strip()
    except OSError:
        recorded = ""
    if recorded:
        out.append((_normalise(recorded), f"recorded by setup in {SETUP_SOCKET_FILE}"))
    seen: set[str] = set()
    unique = []
    for url, why in out:
        if url not in seen:
            seen.add(url)
            unique.append((url, why))
    return unique


def probe(url: str) -> str | None:
    """None when the service answers, else a short reason."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not os.path.exists(path):
            return "socket file does not exist"
        if not os.access(path, os.R_OK | os.W_OK):
            return "socket exists but this user may not use it (permission denied)"
    try:
        with PodmanClient(base_url=url, timeout=_PING_TIMEOUT) as client:
            if client.ping():
                return None
            return "service did not answer the ping"
    except Exception as exc:  # any transport error means "not this one"
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


START_HINT = (
    "start the API service as this user: "
    "podman system service --time=0 unix://$XDG_RUNTIME_DIR/podman/podman.sock & "
    "(or, as root, run scripts/setup-host.sh which starts it for the cleanroom user)"
)


def resolve_url(explicit: str | None = None) -> str:
    tried: list[tuple[str, str]] = []
    for url, origin in candidate_urls(explicit):
        reason = probe(url)
        if reason is None:
            logger.debug("podman service found", url=url, origin=origin)
            return url
        tried.append((f"{url} ({origin})", reason))
    raise EngineUnavailable(tried, START_HINT)
