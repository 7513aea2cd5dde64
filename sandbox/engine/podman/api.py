"""The engine's seam to Podman: every libpod call it makes, typed.

``PodmanAPI`` is what the runner, the services and prune are written against;
``sandbox.engine.podman.libpod.LibpodAPI`` implements it over HTTP, and unit tests drive the
runner through a fake of the same shape. Implementations raise only
``CleanroomError`` subclasses, with messages already redacted:

- ``ContainerNotFound`` when the container (or network) does not exist,
- ``ContainerError`` when Podman refused the call (its message, redacted),
- ``TimeoutExceeded`` when Podman did not answer within the call's timeout,
- ``EngineUnavailable`` when the service cannot be reached at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Protocol

import msgspec

from sandbox.engine.podman.frames import Frame
from sandbox.engine.posture import Posture


class ContainerState(msgspec.Struct, frozen=True, kw_only=True):
    status: str  # "created", "initialized", "running", "exited", ...
    running: bool = False
    pid: int = 0
    exit_code: int | None = None
    error: str = ""


class ContainerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of an inspect result the engine uses."""

    id: str
    name: str
    state: ContainerState
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    ports: dict[int, int] = msgspec.field(default_factory=dict)  # container port → host port
    posture: Posture | None = None  # isolation settings as Podman set them up (when asked for)


class ImageConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What an image runs by default."""

    id: str = ""
    user: str = ""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    workdir: str = ""
    digest: str = ""
    repo_digests: list[str] = msgspec.field(default_factory=list)  # "registry/name@sha256:…"
    size: int = 0  # bytes in local storage


class ContainerSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    state: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)


class NetworkSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)


StdinSource = bytes | BinaryIO
"""What a command reads on stdin: bytes, or a binary file read to its end; then end of file."""


class AttachStream(Protocol):
    """A container's output as frames, from before its start until it exits."""

    def __iter__(self) -> Iterator[Frame]: ...
    def close(self) -> None:
        """Never raises: the connection may already be gone with the service."""


class HeldAttach(AttachStream, Protocol):
    """An attach whose stdin stays open until ``feed`` sends it, then end of file."""

    def feed(self, stdin: StdinSource, *, prefix: bytes = b"") -> None: ...
    def waiting(self) -> bool:
        """Open, nothing received yet: the container still waits for what ``feed`` sends."""


class AttachChannel(AttachStream, Protocol):
    """An attach that stays open both ways: ``send`` writes to the command's stdin at any
    time (never closing it), iteration yields its output frames (a session's agent)."""

    def send(self, data: bytes) -> None:
        """Write all of ``data``; ContainerError once the connection is gone."""


class PodmanAPI(Protocol):
    url: str
    restarts: int  # times the service was restarted under this API (streams opened before are gone)

    def ping(self) -> bool: ...
    def info(self) -> dict[str, Any]: ...
    def image_exists(self, reference: str) -> bool: ...
    def image_config(self, reference: str) -> ImageConfig:
        """ContainerNotFound when there is no such image in local storage."""
    def pull_image(self, reference: str, *, tls_verify: bool, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Pull into local storage; each progress event (the engine's JSON) to ``on_event``."""
    def build_image(self, context: bytes, *, containerfile: str, tag: str, network: str | None,
                    on_line: Callable[[str], None]) -> None:
        """Build ``tag`` from a tar of the context; each output line to ``on_line``."""
    def remove_image(self, reference: str, *, force: bool = False) -> None: ...

    # -- containers ------------------------------------------------------------------
    def create_container(self, spec: dict[str, Any], *, timeout: float) -> str: ...
    def init_container(self, cid: str, *, timeout: float) -> None: ...
    def attach(self, cid: str, *, stdin: StdinSource | None = None) -> AttachStream:
        """Output frames from before start; with ``stdin``, also feeds it, then closes the
        command's stdin (the container must have been created with stdin open)."""
    def attach_held(self, cid: str) -> HeldAttach:
        """Output frames from before start; the command's stdin stays open (nothing is
        sent) until ``feed``."""
    def attach_channel(self, cid: str) -> AttachChannel:
        """Before start: a two-way attach kept open (the container must have stdin open)."""
    def start_container(self, cid: str, *, timeout: float) -> None: ...
    def inspect_container(self, cid: str, *, posture: bool = False) -> ContainerInfo:
        """``posture=True`` also reads the isolation Podman set up (``ContainerInfo.posture``)."""
    def kill_container(self, cid: str, signal: str = "SIGKILL") -> None: ...
    def container_size(self, cid: str) -> int:
        """Bytes written to the container's own layer (Podman's SizeRw)."""
    def remove_container(self, cid: str) -> None: ...
    def container_logs(self, cid: str, *, tail: int | None = None) -> list[Frame]: ...
    def exec_run(self, cid: str, command: list[str], *, env: dict[str, str] | None = None,
                 timeout: float | None = None) -> tuple[int, list[Frame]]: ...
    def list_containers(self, *, labels: list[str]) -> list[ContainerSummary]: ...

    # -- sessions: files in and out (tar) ----------------------------------------------
    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        """Unpack a tar into directory ``path`` of the container."""
    def get_archive(self, cid: str, path: str, *, max_bytes: int) -> bytes:
        """A tar of ``path``; ContainerError once it exceeds ``max_bytes``."""

    # -- networks --------------------------------------------------------------------
    def create_network(self, name: str, *, labels: dict[str, str], exist_ok: bool = False) -> None: ...
    def connect_network(self, name: str, cid: str, aliases: list[str]) -> None: ...
    def disconnect_network(self, name: str, cid: str) -> None: ...
    def remove_network(self, name: str, *, force: bool = False) -> None: ...
    def list_networks(self, *, labels: list[str]) -> list[NetworkSummary]: ...

    def close(self) -> None: ...
