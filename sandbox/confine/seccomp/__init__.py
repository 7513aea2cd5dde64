"""The seccomp profile a sandbox runs under, by security level.

cleanroom ships its own profiles next to this module (written by scripts/gen-seccomp.py,
never generated on the host at run time), one pair per machine:

- ``baseline`` for Minimal, Low and Medium: the syscall surface of Podman's default
  profile, pinned, so a level means the same on every host;
- ``hardened`` for High and Maximum: the baseline minus new user namespaces (clone and
  unshare with CLONE_NEWUSER), keyrings, ptrace and process_vm_*, bpf, perf_event_open,
  userfaultfd, io_uring, every mount call, kexec and module loading, and
  open_by_handle_at, all EPERM; clone3 answers ENOSYS (a filter cannot read its flags;
  libc falls back to clone); only the native ABI is listed, so a 32-bit or x32 syscall
  hits the runtime's bad-architecture action and the process is killed with SIGSYS.

A policy's ``seccomp_profile`` naming a file replaces the level's profile.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from sandbox.errors import PolicyError

HERE = Path(__file__).resolve().parent
FLAVOUR = {"Minimal": "baseline", "Low": "baseline", "Medium": "baseline", "High": "hardened",
           "Maximum": "hardened"}
MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def shipped_profile(level: str, machine: str | None = None) -> Path:
    """cleanroom's own profile for ``level`` on ``machine`` (default: this one)."""
    raw = machine or platform.machine()
    arch = MACHINES.get(raw.lower())
    if arch is None:
        raise PolicyError(f"cleanroom ships no seccomp profile for machine {raw!r} (only x86_64 and aarch64)",
                          key="cleanroom.security_policy.seccomp_profile",
                          allowed="the path of a JSON seccomp profile written for this machine")
    return HERE / f"{FLAVOUR[level]}-{arch}.json"


def profile_for(security_policy: Any, machine: str | None = None) -> Path:
    """The profile a sandbox under this policy runs with: the policy's own file, else the level's."""
    own = getattr(security_policy, "seccomp_profile", None)
    if own and own != "default":
        return Path(own)
    return shipped_profile(security_policy.security_level, machine)


def describe(security_policy: Any) -> str:
    """One line for doctor and policy reports: which profile, and whose."""
    path = profile_for(security_policy)
    own = getattr(security_policy, "seccomp_profile", None)
    if own and own != "default":
        return f"{path} (the policy's own file)"
    return f"cleanroom {FLAVOUR[security_policy.security_level]} ({path.name})"
