"""When a container's process has ended: its exit code, as soon as Podman has it."""

from __future__ import annotations

import time

from loguru import logger

from sandbox.engine.podman.api import PodmanAPI
from sandbox.engine.types import SandboxHandle
from sandbox.errors import CleanroomError, EngineUnavailable


def exit_status(api: PodmanAPI, handle: SandboxHandle, timeout: float = 30.0) -> int:
    """The exit code once Podman has recorded the exit.

    The output stream has already ended, so the process is gone; inspect sees the
    exit within milliseconds, while the wait endpoint answers only after Podman's
    own cleanup (~90 ms here). The poll backs off so a slow host is not hammered.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            state = api.inspect_container(handle.id).state
        except EngineUnavailable:
            raise  # the service is gone: not an exit code of the sandbox's
        except CleanroomError as exc:
            logger.warning("inspect after exit failed", sandbox=handle.name, error=str(exc))
            return -1
        if state.status in ("exited", "stopped") or not state.running:
            return state.exit_code if state.exit_code is not None else -1
        if time.monotonic() > deadline:
            logger.warning("exit not recorded in time", sandbox=handle.name, status=state.status)
            return -1
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
