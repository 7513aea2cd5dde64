"""A running detached container: its ports, its redacted logs, exec, its removal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.engine.output import combined, redact_text
from sandbox.engine.podman.api import PodmanAPI
from sandbox.engine.types import AuditFn, SandboxHandle
from sandbox.errors import CleanroomError, ContainerNotFound

if TYPE_CHECKING:
    from sandbox.redact.redactor import Redactor


class ServiceHandle:
    """What services see of their container; made only by ``SandboxRunner``."""

    def __init__(self, api: PodmanAPI, redactor: Redactor | None, audit: AuditFn, handle: SandboxHandle,
                 ports: dict[int, int], on_remove: Callable[[], None]) -> None:
        self._api = api
        self._redactor = redactor
        self._audit = audit
        self.handle = handle
        self.id = handle.id
        self.name = handle.name
        self.ports = dict(ports)
        self._on_remove = on_remove
        self.removed = False

    def logs(self, tail_lines: int | None = None) -> str:
        """The container's output so far, redacted."""
        return combined(self._redactor, self._api.container_logs(self.id, tail=tail_lines))

    def state(self) -> dict[str, object]:
        try:
            state = self._api.inspect_container(self.id).state
        except ContainerNotFound:
            return {"Status": "removed", "Running": False}
        except CleanroomError as exc:  # Podman could not inspect it: it is not a usable service
            return {"Status": "unknown", "Running": False, "Error": str(exc)}
        return {"Status": state.status, "Running": state.running, "ExitCode": state.exit_code, "Pid": state.pid}

    def is_running(self) -> bool:
        return bool(self.state().get("Running"))

    def exec(self, command: list[str], *, env: dict[str, str] | None = None,
             timeout: float | None = None) -> tuple[int, str]:
        """Run a command inside; returns (exit code, redacted combined output)."""
        code, frames = self._api.exec_run(self.id, command, env=env, timeout=timeout)
        text = combined(self._redactor, frames)
        self._audit("sandbox.exec", "High", sandbox=self.name, exit_code=code,
                    command=[redact_text(self._redactor, a) for a in command])
        return code, text

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        self._on_remove()
