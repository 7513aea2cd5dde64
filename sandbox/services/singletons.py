"""One container per name: within a process, across pytest-xdist workers, across runs.

A file lock serialises creators on this host; labels find a container another
process made. A singleton is reused only if it is running, was made from the same
definition (a digest label) and passes its health check; otherwise it is replaced.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from filelock import FileLock
from loguru import logger
from podman.errors import NotFound

from sandbox.engine.lifecycle import SandboxHandle, ServiceHandle, host_ports
from sandbox.engine.networks import ensure_shared_network
from sandbox.engine.ownership import LABEL_KIND, LABEL_SINGLETON

LABEL_DIGEST = "io.cleanroom.spec-digest"


def lock_path(name: str) -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cleanroom-{os.getuid()}"
    d = Path(runtime) / "cleanroom" / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"singleton-{_safe(name)}.lock"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]


def container_name(name: str) -> str:
    return f"cleanroom-singleton-{_safe(name)}"


def find(runner: Any, name: str) -> dict[str, Any] | None:
    """The inspect data of the singleton container called ``name``, if any."""
    api = runner.connection.api()
    filters = json.dumps({"label": [f"{LABEL_SINGLETON}={name}"]})
    found = api.get("/containers/json", params={"all": True, "filters": filters}).json() or []
    if not found:
        return None
    try:
        return api.get(f"/containers/{found[0]['Id']}/json").json()
    except NotFound:
        return None


def handle_for(runner: Any, info: dict[str, Any]) -> ServiceHandle:
    """A ServiceHandle over a container this process did not create (never auto-removed)."""
    handle = SandboxHandle(id=info["Id"], name=info["Name"].lstrip("/"), pid=int(info["State"].get("Pid") or 0),
                           policy=runner.policy, limits={})
    return ServiceHandle(runner, handle, 0, host_ports(info))


def remove(runner: Any, info: dict[str, Any]) -> None:
    try:
        runner.connection.api().delete(f"/containers/{info['Id']}", params={"force": True, "v": True, "timeout": 0})
    except NotFound:
        pass


def get_or_create(env: Any, name: str, factory: Any) -> Any:
    container = factory()
    digest = container.spec_digest()
    runner = env.runner
    with FileLock(str(lock_path(name)), timeout=float(env.config.container_startup_timeout) * 2):
        info = find(runner, name)
        if info is not None:
            labels = info.get("Config", {}).get("Labels") or {}
            if info["State"].get("Running") and labels.get(LABEL_DIGEST) == digest:
                try:
                    container.adopt(env, handle_for(runner, info), alias=name)
                    healthy = container.is_healthy()
                except Exception:  # cannot join or probe it: replace it like an unhealthy one
                    healthy = False
                if healthy:
                    env._audit("singleton.reused", "Medium", name=name, sandbox=container.service.name)
                    env.record_metric("containers.reused", 1)
                    return container
            # Dead, unhealthy or made from another definition: replace it.
            env._audit("singleton.replaced", "Medium", name=name, sandbox=info["Name"].lstrip("/"),
                       reason="not running" if not info["State"].get("Running") else "unhealthy or changed")
            remove(runner, info)
            container.reused = False
        container.start(env, keep=True, name=container_name(name), alias=name,
                        primary_network=ensure_shared_network(runner.connection),
                        labels={LABEL_SINGLETON: name, LABEL_DIGEST: digest, LABEL_KIND: "service"})
        try:
            container.wait_for_ready()
        except BaseException:
            try:
                container.stop()  # a singleton that never became ready must not linger
            except Exception as exc:  # the readiness error is the one the user needs
                logger.warning("could not remove a failed singleton (prune removes it)", name=name, error=str(exc))
            raise
        env.record_metric("containers.created", 1)
        env._audit("singleton.created", "Medium", name=name, sandbox=container.service.name)
        return container
