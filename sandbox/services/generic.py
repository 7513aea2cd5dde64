"""GenericContainer: any image as a confined, long-running service."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sandbox.engine.launcher import ServiceLauncher, ServiceSpec
from sandbox.engine.service import ServiceHandle
from sandbox.errors import CleanroomError, ContainerError
from sandbox.services.wait import PortOpen, WaitStrategy

SERVICES_IMAGE = "localhost/cleanroom/services:bookworm"
_TAIL = 20


class GenericContainer:
    """A service container: configured first, started by an environment.

    Ports are published on 127.0.0.1 on free ports chosen at run time; ``secrets``
    are registered with the environment's redactor before the container starts.
    """

    def __init__(
        self,
        image: str,
        command: list[str] | None = None,
        *,
        env: dict[str, str] | None = None,
        ports: list[int] | tuple[int, ...] = (),
        wait: WaitStrategy | None = None,
        name: str | None = None,
        writable_paths: dict[str, int] | list[str] | None = None,
        secrets: dict[str, str] | None = None,
        startup_timeout: float | None = None,
    ) -> None:
        self.image = image
        self.command = command
        self.env_vars = dict(env or {})
        self.ports = list(ports)
        self.wait = wait or (PortOpen(self.ports[0]) if self.ports else None)
        self.name = name
        self.writable_paths = writable_paths
        self.secrets = dict(secrets or {})
        self.startup_timeout = startup_timeout
        self._launcher: ServiceLauncher | None = None
        self.service: ServiceHandle | None = None
        self.reused = False

    # -- identity -------------------------------------------------------------------
    def definition(self) -> ServiceSpec:
        return ServiceSpec(image=self.image, command=self.command, env=dict(self.env_vars), ports=list(self.ports),
                           writable_paths=self.writable_paths, name=self.name)

    def identity(self) -> dict[str, Any]:
        """What else, beyond image, command and environment, makes this service what it is
        (a subclass's one-time initialisation, say): part of the singleton digest."""
        return {}

    def spec_digest(self) -> str:
        """What must match for a running singleton to be reused for this definition."""
        # "network" names how services are wired: a container made under another
        # scheme (one without the environment network) cannot join and is replaced;
        # "cgroup" likewise: one made inside an environment's cgroup is replaced once.
        data = {"image": self.image, "command": self.command, "env": self.env_vars, "ports": self.ports,
                "class": type(self).__name__, "network": "shared-primary+environment",
                "cgroup": "shared-services", **self.identity()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    # -- lifecycle ------------------------------------------------------------------
    def start(self, environment: Any) -> GenericContainer:
        """Start in ``environment`` as a service it owns (removed when it closes).

        ``env.get_or_create_container(name, factory)`` is the usual way: it also
        reuses one container per name, and shares singletons across runs.
        """
        environment.services.start(self)
        return self

    def _prepare(self, launcher: ServiceLauncher) -> None:
        """Bind to an environment's engine; secrets are masked before anything starts."""
        self._launcher = launcher
        for name, value in self.secrets.items():
            launcher.add_secret(value, name)

    def _attach(self, service: ServiceHandle, *, reused: bool = False) -> None:
        self.service = service
        self.reused = reused

    def _require_launcher(self) -> ServiceLauncher:
        if self._launcher is None:
            raise CleanroomError(f"{type(self).__name__} is not started: use env.get_or_create_container(...)")
        return self._launcher

    def _require(self) -> Any:
        if self.service is None:
            raise CleanroomError(f"{type(self).__name__} is not started: use env.get_or_create_container(...)")
        return self.service

    def host_port(self, container_port: int) -> int:
        ports = self._require().ports
        if container_port not in ports:
            raise ContainerError(f"port {container_port} is not published (published: {sorted(ports)})",
                                 sandbox=self.service.name)
        return ports[container_port]

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def logs(self) -> str:
        return self._require().logs()

    def exec(self, command: list[str], **kw: Any) -> tuple[int, str]:
        return self._require().exec(command, **kw)

    def is_running(self) -> bool:
        return self.service is not None and self.service.is_running()

    def health_check(self) -> bool:
        return self.wait.check(self) if self.wait is not None else True

    def adoption_probe(self) -> bool:
        """One readiness probe of a running container this process did not start (a
        reused singleton): the wait strategy's check, once. Services with a protocol
        probe it directly instead (a query costs less than reading the start-up log)."""
        try:
            return self.health_check()
        except Exception:
            return False

    def is_healthy(self) -> bool:
        try:
            return self.is_running() and self.health_check()
        except Exception:
            return False

    def wait_for_ready(self, timeout: float | None = None) -> GenericContainer:
        svc = self._require()
        if timeout is None:
            timeout = self.startup_timeout or float(self._launcher.config.container_startup_timeout)
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                if self.health_check():
                    return self
            except Exception:  # a probe may fail while the service is coming up
                pass
            state = svc.state()
            # "unknown": Podman could not inspect it this moment (it may be mid-exit);
            # ask again until the deadline rather than report an exit without its code.
            if not state.get("Running", False) and state.get("Status") != "unknown":
                raise ContainerError(f"service exited before it was ready ({self.wait.describe()})",
                                     sandbox=svc.name, exit_code=state.get("ExitCode"),
                                     last_output=self._tail())
            if time.monotonic() > deadline:
                raise ContainerError(f"not ready after {timeout:g} s (waiting for {self.wait.describe()})",
                                     sandbox=svc.name, last_output=self._tail())
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _tail(self) -> str:
        try:
            return "\n".join(self.logs().rstrip("\n").splitlines()[-_TAIL:])
        except Exception:
            return ""

    def release(self) -> None:
        """This process is done with the container, which may stay running for others
        (a singleton): what it holds on the container's behalf (connections, prepared
        state) goes. Called when its environment closes."""

    def stop(self) -> None:
        if self.service is not None:
            self.service.remove()
