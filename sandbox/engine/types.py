"""What the engine and the confiners share: the request, the handle, usage, breaches.

Both ``sandbox.engine`` and ``sandbox.confine`` import this module and nothing else
from each other, so neither layer depends on the other's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec


class LimitBreach(msgspec.Struct, frozen=True, kw_only=True):
    limit: str  # "memory", "pids", "cpu", "timeout", ...
    limit_value: float | int | None
    observed: float | int | None
    detail: str = ""


class Usage(msgspec.Struct, kw_only=True):
    """What a sandbox used; None where this host cannot measure it."""

    peak_memory_bytes: int | None = None
    cpu_seconds: float | None = None
    peak_pids: int | None = None
    oom_kills: int = 0
    pids_limit_hits: int = 0
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None
    cpu_limit_percent: float | None = None
    peak_disk_bytes: int | None = None  # what it wrote: tmpfs reservations aside, its container layer


class NetworkAttachment(msgspec.Struct, frozen=True):
    """A named bridge network to join, reachable there under these aliases."""

    name: str
    aliases: list[str] = msgspec.field(default_factory=list)


class Mount(msgspec.Struct, frozen=True):
    """A host path bind-mounted into a sandbox at ``target``; read-only unless asked.

    ``source`` may be relative (to the current directory); the policy's
    ``allowed_mount_paths`` decides whether it may be mounted at all.
    """

    source: str
    target: str
    read_only: bool = True


class CreateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the engine needs to create one container, named before it exists.

    ``network`` is a policy mode ("none", "egress", ...), an attachment to a named
    network, or None for the policy's own mode. ``limits`` overrides the policy's
    per-sandbox limits for this one call.
    """

    image: str
    name: str
    kind: str = "sandbox"  # "sandbox" (runs to completion) or "service" (detached)
    command: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    ports: dict[int, int | None] = msgspec.field(default_factory=dict)
    network: str | NetworkAttachment | None = None
    limits: dict[str, Any] = msgspec.field(default_factory=dict)
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    writable_paths: dict[str, int] | list[str] | None = None
    user: str | None = None
    mounts: list[Mount] = msgspec.field(default_factory=list)
    workdir: str | None = None
    stdin: bool = False  # keep the command's stdin open for data sent through attach
    # cleanroom's own mounts, never the user's, so not judged by allowed_mount_paths: its
    # static helpers (sandbox.engine.helper.build, read-only) and an environment's attachment
    # (sandbox.engine.attachment: the coverage data directory is the one writable mount).
    system_mounts: list[Mount] = msgspec.field(default_factory=list)
    # Capabilities the helper needs to switch users (SETUID, SETGID); it drops them
    # before any command runs.
    extra_caps: list[str] = msgspec.field(default_factory=list)
    entrypoint: list[str] | None = None
    # False: Podman keeps no log of the output (a session's agent: it carries every
    # command's output, unredacted, which must not pile up on disk).
    keep_log: bool = True


class SandboxHandle(msgspec.Struct, kw_only=True):
    """An initialised container whose command has not run yet, as confiners see it.

    Confiners fill ``usage``, ``breaches`` and ``facts`` (what they applied, read back,
    for the audit).
    """

    id: str
    name: str
    pid: int = 0
    limits: dict[str, Any] = msgspec.field(default_factory=dict)
    usage: Usage = msgspec.field(default_factory=Usage)
    breaches: list[LimitBreach] = msgspec.field(default_factory=list)
    facts: dict[str, Any] = msgspec.field(default_factory=dict)
    network_mode: str = "none"  # the namespace Podman made: "none", "slirp4netns" or "bridge"
    confine_seconds: float = 0.0  # time spent in the confinement hooks (init → confined)


class StageObserver(Protocol):
    """Told, in the thread doing the work, when each stage of a container's life begins:
    create, init, confine, start, run, wait, remove, and "done" once it is gone.
    Monitoring and tracing time the engine from these marks; an observer never raises."""

    def stage(self, sandbox: str, stage: str) -> None: ...


class NoObserver:
    def stage(self, sandbox: str, stage: str) -> None:
        return None


# Singletons outlive the environment that made them, so no environment's cgroup may
# hold them: they are confined in one cgroup of their own, <subtree>/shared-services/
# <container name>, limited by [cleanroom.resource_limits.services]. A create request
# (and so its container) labelled LABEL_CGROUP = SHARED_SERVICES_CGROUP is placed there.
SHARED_SERVICES_CGROUP = "shared-services"
LABEL_CGROUP = "io.cleanroom.cgroup"

AuditFn = Callable[..., None]
"""``audit(event, min_level, **data)``: record an event in the environment's audit trail."""


class Confiner(Protocol):
    """One kind of confinement, called by the runner at fixed points of a sandbox's life.

    before_create may refuse (raise) before anything exists; create_failed undoes its
    reservation when creation then failed; after_init applies limits to the process
    that has not run its command yet; after_exit reads final figures; release frees
    what after_init made; close ends the confiner with its environment.
    """

    def before_create(self, request: CreateRequest) -> None: ...
    def create_failed(self, request: CreateRequest) -> None: ...
    def after_init(self, handle: SandboxHandle) -> None: ...
    def after_exit(self, handle: SandboxHandle) -> None: ...
    def release(self, handle: SandboxHandle) -> None: ...
    def close(self) -> None: ...


class ConfinerBase:
    """Every hook as a no-op, for confiners that need only some of them."""

    def before_create(self, request: CreateRequest) -> None:
        return None

    def create_failed(self, request: CreateRequest) -> None:
        return None

    def after_init(self, handle: SandboxHandle) -> None:
        return None

    def after_exit(self, handle: SandboxHandle) -> None:
        return None

    def release(self, handle: SandboxHandle) -> None:
        return None

    def close(self) -> None:
        return None
