"""One container per name: within a process, across pytest-xdist workers, across runs.

A file lock serialises creators on this host; labels find a container another
process made. A singleton is reused only if it is running, was made from the same
definition (a digest label) and passes its health check; otherwise it is replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock
from loguru import logger

from sandbox.engine.launcher import LABEL_DIGEST, ServiceLauncher


def lock_path(name: str) -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cleanroom-{os.getuid()}"
    d = Path(runtime) / "cleanroom" / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"singleton-{_safe(name)}.lock"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64]


def container_name(name: str) -> str:
    return f"cleanroom-singleton-{_safe(name)}"


def _try_adopt(launcher: ServiceLauncher, container: Any, info: Any, name: str) -> bool:
    """Join a running singleton and probe it once; False when it cannot serve.

    The inspect that found it already says it runs, so the one probe is the service's
    own protocol (``adoption_probe``: a query, a PING), not the start-up wait again."""
    try:
        container._attach(launcher.adopt(info, alias=name), reused=True)
        return container.adoption_probe()
    except Exception:  # cannot join or probe it: replace it like an unhealthy one
        return False


def get_or_create(launcher: ServiceLauncher, name: str, factory: Callable[[], Any],
                  record_metric: Callable[[str, float], None]) -> Any:
    container = factory()
    container._prepare(launcher)
    digest = container.spec_digest()
    with FileLock(str(lock_path(name)), timeout=float(launcher.config.container_startup_timeout) * 2):
        info = launcher.find_singleton(name, container_name(name))
        if info is not None:
            if info.state.running and info.labels.get(LABEL_DIGEST) == digest and \
                    _try_adopt(launcher, container, info, name):
                launcher.audit("singleton.reused", "Medium", name=name, sandbox=info.name)
                record_metric("containers.reused", 1)
                return container
            # Dead, unhealthy or made from another definition: replace it.
            launcher.audit("singleton.replaced", "Medium", name=name, sandbox=info.name,
                           reason="not running" if not info.state.running else "unhealthy or changed")
            launcher.remove(info.id)
        service = launcher.start_singleton(container.definition(), name=name, container_name=container_name(name),
                                           digest=digest)
        container._attach(service, reused=False)
        try:
            container.wait_for_ready()
        except BaseException:
            try:
                container.stop()  # a singleton that never became ready must not linger
            except Exception as exc:  # the readiness error is the one the user needs
                logger.warning("could not remove a failed singleton (prune removes it)", name=name, error=str(exc))
            raise
        record_metric("containers.created", 1)
        launcher.audit("singleton.created", "Medium", name=name, sandbox=service.name)
        return container
