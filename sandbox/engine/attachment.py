"""What cleanroom itself adds to every sandbox an environment makes (today: coverage).

An attachment is set on an environment by cleanroom's own code (the pytest plugin,
under ``enable_coverage_tracking``), never by a policy, ``env.run(mounts=...)`` or
``cleanroom run -v``: those are user mounts, judged by ``allowed_mount_paths`` and
``allow_writable_mounts`` (``sandbox.engine.mounts``). An attachment's mounts go into
the request's ``system_mounts``, the one place a mount may be writable without
``allow_writable_mounts`` (spec.py keeps ``read_only`` as given there), so they are in
the create body and the posture check holds the container to them; the runner audits
every writable one (``sandbox.mounts``, ``internal``). Not judged by the policy's paths,
they are still refused when they would expose the host's root or the engine's socket.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from sandbox.engine.types import CreateRequest, Mount
from sandbox.errors import PolicyError

# Variables that are search paths: the attachment's entries go first, the request's after.
_PATH_LIKE = frozenset({"PYTHONPATH"})


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """Environment variables and cleanroom's own mounts for every sandbox; ``name`` says
    whose they are in the audit."""

    name: str
    env: dict[str, str] = msgspec.field(default_factory=dict)
    mounts: list[Mount] = msgspec.field(default_factory=list)


def refuse_unsafe(attachment: Attachment, sockets: Iterable[str]) -> None:
    """Not judged by allowed_mount_paths, an attachment's mounts still never hand a sandbox
    the host's root or a directory holding the Podman API socket (read-only does not stop a
    connect: a sandbox with that socket controls the engine)."""
    paths = [Path(s) for s in sockets]
    for mount in attachment.mounts:
        real = Path(os.path.realpath(mount.source))
        if real == Path("/") or any(s == real or s.is_relative_to(real) for s in paths):
            raise PolicyError(f"cleanroom's {attachment.name} mount of {mount.source} at {mount.target} is refused: "
                              "it is the host's root directory or holds the Podman API socket; run from a project "
                              "directory that holds neither")


def merged_env(ours: dict[str, str], theirs: dict[str, str]) -> dict[str, str]:
    """The request's variables win, except search paths, which keep ours in front."""
    out = {**ours, **theirs}
    for key in _PATH_LIKE & ours.keys() & theirs.keys():
        out[key] = f"{ours[key]}:{theirs[key]}" if theirs[key] else ours[key]
    return out


def attach(request: CreateRequest, attachment: Attachment) -> tuple[CreateRequest, list[Mount]]:
    """The request with the attachment's variables and mounts, and the mounts it added.

    A user mount at the same target keeps its place (it was asked for explicitly and is
    judged by the policy); the attachment's mount there is left out.
    """
    taken = {m.target.rstrip("/") for m in [*request.mounts, *request.system_mounts]}
    added = [m for m in attachment.mounts if m.target.rstrip("/") not in taken]
    out = msgspec.structs.replace(request, env=merged_env(attachment.env, request.env),
                                  system_mounts=[*request.system_mounts, *added])
    return out, added
