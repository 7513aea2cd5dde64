"""What services see of an environment's engine: start, find, adopt, remove.

Services (``sandbox.services``) never touch the runner, the Podman API or the
network directly; this is their whole interface, so the engine can change below
it without them noticing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from sandbox.engine.networks import EnvironmentNetwork, ensure_shared_network
from sandbox.engine.output import errors_redacted
from sandbox.engine.podman.api import ContainerInfo
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.service import ServiceHandle
from sandbox.engine.teardown import cleanup
from sandbox.engine.teardown.ownership import LABEL_KIND, LABEL_SINGLETON
from sandbox.engine.types import LABEL_CGROUP, SHARED_SERVICES_CGROUP, CreateRequest, NetworkAttachment, SandboxHandle
from sandbox.errors import ContainerNotFound

if TYPE_CHECKING:
    from sandbox.policy.config import CleanroomConfig

LABEL_DIGEST = "io.cleanroom.spec-digest"


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A service container as its class defines it (what a singleton's digest covers)."""

    image: str
    command: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    ports: list[int] = msgspec.field(default_factory=list)
    writable_paths: dict[str, int] | list[str] | None = None
    name: str | None = None


class ServiceLauncher:
    def __init__(self, runner: SandboxRunner, network: EnvironmentNetwork,
                 add_secret: Callable[[str, str], None]) -> None:
        self._runner = runner
        self._network = network
        self._add_secret = add_secret

    @property
    def config(self) -> CleanroomConfig:
        return self._runner.config

    def audit(self, event: str, min_level: str = "Minimal", **data: Any) -> None:
        self._runner.audit(event, min_level, **data)

    def add_secret(self, value: str, name: str) -> None:
        self._add_secret(value, name)

    def redact(self, text: str) -> str:
        return self._runner.redact(text)

    def start(self, spec: ServiceSpec, *, alias: str | None = None) -> ServiceHandle:
        """A service of this environment, on its private network; removed when it closes."""
        net = NetworkAttachment(self._network.ensure(), [alias] if alias else [])
        return self._start(self._request(spec, spec.name, net, {}))

    def start_singleton(self, spec: ServiceSpec, *, name: str, container_name: str, digest: str) -> ServiceHandle:
        """A singleton: kept running past this process, first on the shared network (its
        published ports follow its first network), and joined to this environment's; confined
        in the shared-services cgroup, not this environment's."""
        net = NetworkAttachment(ensure_shared_network(self._runner.api), [name])
        labels = {LABEL_SINGLETON: name, LABEL_DIGEST: digest, LABEL_KIND: "service",
                  LABEL_CGROUP: SHARED_SERVICES_CGROUP}
        service = self._start(self._request(spec, container_name, net, labels), keep=True)
        # A container that already died must not be connected (Podman then cannot even
        # inspect it); the readiness wait reports its exit and output instead.
        if service.is_running():
            self._network.connect(service.id, [name])
        return service

    def find_singleton(self, name: str, container_name: str | None = None) -> ContainerInfo | None:
        """The singleton container called ``name`` made by any process, if there is one.

        ``container_name``, the name singletons are created under, is looked up first: one
        inspect instead of a label search and an inspect (adoption is on every test
        process's path); the label search still finds one made under another name."""
        api = self._runner.api
        if container_name is not None:
            try:
                info = api.inspect_container(container_name)
            except ContainerNotFound:
                info = None
            if info is not None and info.labels.get(LABEL_SINGLETON) == name:
                return info
        found = api.list_containers(labels=[f"{LABEL_SINGLETON}={name}"])
        return api.inspect_container(found[0].id) if found else None

    def adopt(self, info: ContainerInfo, alias: str) -> ServiceHandle:
        """Use a running singleton another process made, joined to this environment's network."""
        handle = SandboxHandle(id=info.id, name=info.name, pid=info.state.pid)
        service = self._handle(handle, info.ports, on_remove=lambda: self._remove_adopted(handle))
        self._network.connect(info.id, [alias])
        return service

    def remove(self, container_id: str) -> None:
        self._runner.api.remove_container(container_id)

    def _remove_adopted(self, handle: SandboxHandle) -> None:
        """Remove an adopted singleton; its confinement (made by another process: its
        shared-services cgroup) goes with it."""
        self.remove(handle.id)
        for confiner in self._runner.confiners:
            confiner.release(handle)

    def _start(self, request: CreateRequest, *, keep: bool = False) -> ServiceHandle:
        """create → init → confine → start, detached; its output stays in Podman's log.

        ``keep=True`` (singletons) leaves it running past this process; otherwise it is
        removed by ``ServiceHandle.remove`` or, failing that, when the environment closes.
        """
        runner = self._runner
        with errors_redacted(runner.redactor):
            made = runner.create(request)
            try:
                runner.observer.stage(request.name, "start")
                runner.api.start_container(made.handle.id, timeout=runner.startup_timeout)
                info = runner.api.inspect_container(made.handle.id)
                runner.observer.stage(request.name, "run")
            except BaseException:
                runner.dispose(made)
                raise
        runner.audit("sandbox.started", "Minimal", sandbox=request.name, kind="service")
        if keep:
            # A kept singleton outlives us by design; its cgroup stays with it.
            cleanup.done(made.token)
            made.token = 0

        def remove() -> None:
            runner.dispose(made, read_usage=True)
            runner.audit("sandbox.removed", "Minimal", sandbox=request.name, kind="service")

        return self._handle(made.handle, info.ports, on_remove=remove)

    def _handle(self, handle: SandboxHandle, ports: dict[int, int], on_remove: Callable[[], None]) -> ServiceHandle:
        return ServiceHandle(self._runner.api, self._runner.redactor, self._runner.audit, handle, ports, on_remove)

    def _request(self, spec: ServiceSpec, name: str | None, net: NetworkAttachment,
                 labels: dict[str, str]) -> CreateRequest:
        return self._runner.request(
            spec.image, spec.command, kind="service", name=name, labels=labels, env=dict(spec.env),
            ports={p: None for p in spec.ports}, network=net, writable_paths=spec.writable_paths,
        )
