"""What a seccomp profile file named by ``security_policy.seccomp_profile`` must look like.

The format is the JSON one Podman reads (``--security-opt seccomp=FILE``): a default
action, optional architectures, and syscall rules. Checked when the policy loads, so a
typo or a broken file is a PolicyError naming the key, not a failed container create.
Fields the engine understands beyond these (comment, includes, excludes ...) pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Action = Literal["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                 "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
Operator = Literal["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                   "SCMP_CMP_MASKED_EQ"]
Arch = Annotated[str, Meta(pattern=r"^SCMP_ARCH_[A-Z0-9_]+$")]
SyscallName = Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]*$")]


class ArgRule(msgspec.Struct):
    index: Annotated[int, Meta(ge=0, le=5)]
    op: Operator
    value: Annotated[int, Meta(ge=0)] = 0
    valueTwo: Annotated[int, Meta(ge=0)] = 0  # the file format spells these in camelCase


class SyscallRule(msgspec.Struct):
    action: Action
    names: list[SyscallName] | None = None
    name: SyscallName | None = None
    args: list[ArgRule] | None = None


class ArchEntry(msgspec.Struct):
    architecture: Arch
    subArchitectures: list[Arch] | None = None


class SeccompProfile(msgspec.Struct):
    defaultAction: Action
    architectures: list[Arch] | None = None
    archMap: list[ArchEntry] | None = None
    syscalls: list[SyscallRule] | None = None


def profile_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a usable seccomp profile, or None when it is."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot read the seccomp profile {path}: {exc.strerror or exc}"
    try:
        json.loads(data)
    except ValueError as exc:
        return f"the seccomp profile {path} is not valid JSON: {exc}"
    try:
        profile = msgspec.json.decode(data, type=SeccompProfile)
    except msgspec.ValidationError as exc:
        return f"the seccomp profile {path} is not in Podman's seccomp format: {exc}"
    for i, rule in enumerate(profile.syscalls or []):
        if not rule.names and not rule.name:
            return f"the seccomp profile {path} has a rule without syscall names (syscalls[{i}])"
    return None
