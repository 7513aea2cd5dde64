"""Running as a non-root user under cgroup confinement.

On cgroup v1 a process can be moved between cgroups only by its own uid, and the
engine's uid is the container's root. So a sandbox whose image (or request) names
another user starts as the container's root, is placed in its cgroup while the
command has not run, and then cleanroom-helper (static, mounted read-only) switches to
that user and execs the image's entrypoint and command. The helper needs CAP_SETUID
and CAP_SETGID to switch; it drops them before the command runs (a non-root user has
no capabilities left at all).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from sandbox.engine.helper.build import HELPER_TARGET, helper
from sandbox.engine.podman.api import ImageConfig
from sandbox.engine.types import CreateRequest, Mount
from sandbox.policy import effective_isolation

SWITCH_CAPS = ["SETUID", "SETGID"]


class ImageConfigs(Protocol):
    """Where an image's configuration is looked up: the API, or an environment's recent lookups."""

    def image_config(self, reference: str) -> ImageConfig: ...


def is_root(user: str | None) -> bool:
    name = (user or "").split(":", 1)[0]
    return name in ("", "0", "root")


def helper_mount() -> Mount:
    return Mount(helper(), HELPER_TARGET)


def program_of(image: ImageConfig, request: CreateRequest) -> list[str]:
    """What the container runs for ``request``: its entrypoint (or the image's), then its
    command (or the image's CMD)."""
    entrypoint = request.entrypoint if request.entrypoint is not None else image.entrypoint
    command = request.command if request.command is not None else image.cmd
    return [*(entrypoint or []), *(command or [])]


def as_user(api: ImageConfigs, request: CreateRequest, keep_caps: bool) -> CreateRequest:
    """The request, started as root and dropping to its user through the helper when that
    user (asked for, or the image's USER) is not root; unchanged otherwise."""
    image: ImageConfig | None = None
    user = request.user
    if not user:
        image = api.image_config(request.image)
        user = image.user
    if is_root(user):
        return request
    image = image or api.image_config(request.image)
    program = program_of(image, request)
    if not program:
        return request  # nothing to run: Podman's own error says so
    flags = ["-u", user, *(["-k"] if keep_caps else []), "--"]
    mounts = request.system_mounts
    if all(m.target != HELPER_TARGET for m in mounts):  # a pool member has it already
        mounts = [*mounts, helper_mount()]
    return msgspec.structs.replace(
        request, user="0", entrypoint=[HELPER_TARGET, *flags], command=program,
        system_mounts=mounts, extra_caps=[*request.extra_caps, *SWITCH_CAPS])


def keep_switch_caps(policy: object) -> bool:
    """True when the policy itself grants CAP_SETUID and CAP_SETGID (then the helper keeps them)."""
    iso = effective_isolation(policy.security_policy)  # type: ignore[attr-defined]
    if not iso.drop_all_capabilities:
        return True  # Podman's default set, which has both: the policy's own choice
    return set(SWITCH_CAPS) <= {c.upper().removeprefix("CAP_") for c in iso.allowed_capabilities or []}


def moves_processes(confiners: object) -> bool:
    """A confiner that moves processes between cgroups is present (the reason for all this)."""
    return any(getattr(c, "driver", None) is not None for c in confiners)  # type: ignore[attr-defined]
