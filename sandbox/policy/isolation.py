"""security_level presets, and the concrete isolation a sandbox gets once explicit
keys have overridden the preset."""

from __future__ import annotations

from typing import Any

import msgspec

from sandbox.policy.model import SecurityPolicy

# Linux capability names (without CAP_), for validating allowed_capabilities.
CAPABILITIES = frozenset("""
CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE
""".split())


class Isolation(msgspec.Struct, frozen=True, kw_only=True):
    read_only_root: bool
    drop_all_capabilities: bool
    allowed_capabilities: tuple[str, ...]
    no_new_privileges: bool
    seccomp_profile: str
    network_mode: str  # "none" | "egress" | "allowlist"


# What each level means when no explicit key says otherwise. Capabilities are what
# survives "drop ALL"; Minimal keeps Podman's default set.
_PRESETS: dict[str, dict] = {
    "Minimal": dict(read_only_root=False, drop_all_capabilities=False, allowed_capabilities=(),
                    no_new_privileges=False),
    "Low": dict(read_only_root=False, drop_all_capabilities=True,
                allowed_capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID",
                                      "SETUID", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "SETFCAP"),
                no_new_privileges=True),
    "Medium": dict(read_only_root=True, drop_all_capabilities=True,
                   allowed_capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID",
                                         "NET_BIND_SERVICE", "KILL"),
                   no_new_privileges=True),
    "High": dict(read_only_root=True, drop_all_capabilities=True,
                 allowed_capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"),
                 no_new_privileges=True),
    "Maximum": dict(read_only_root=True, drop_all_capabilities=True, allowed_capabilities=(),
                    no_new_privileges=True),
}


def normalise_capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def effective_isolation(sp: SecurityPolicy) -> Isolation:
    """The preset of ``sp.security_level`` with every explicit (non-None) key applied.

    ``enable_filesystem_isolation = false`` gives a writable root whatever the level
    or ``read_only_root`` say: switching the feature off is the broader statement.
    """
    preset = _PRESETS[sp.security_level]
    read_only = sp.read_only_root if sp.read_only_root is not None else preset["read_only_root"]
    # Filesystem isolation off means a writable root whatever the level says.
    if not sp.enable_filesystem_isolation:
        read_only = False
    caps = (tuple(normalise_capability(c) for c in sp.allowed_capabilities)
            if sp.allowed_capabilities is not None else preset["allowed_capabilities"])
    drop_all = sp.drop_all_capabilities if sp.drop_all_capabilities is not None else preset["drop_all_capabilities"]
    nnp = sp.no_new_privileges if sp.no_new_privileges is not None else preset["no_new_privileges"]
    # An explicit network_mode always wins. Otherwise Maximum means no network even
    # if isolation was switched off: the level is the stronger, later-read promise.
    if sp.network_mode is not None:
        mode = sp.network_mode
    elif sp.enable_network_isolation or sp.security_level == "Maximum":
        mode = "none"
    else:
        mode = "egress"
    return Isolation(
        read_only_root=read_only,
        drop_all_capabilities=drop_all,
        allowed_capabilities=caps,
        no_new_privileges=nnp,
        seccomp_profile=sp.seccomp_profile or "default",
        network_mode=mode,
    )


def tmpfs_sizes(policy: Any, writable_paths: list[str] | dict[str, int] | None) -> dict[str, int]:
    """The size-limited tmpfs mounts of a sandbox (only with a read-only root): /tmp and
    any extra writable paths (a database's data directory); a dict gives each its own
    size, a list uses the policy's tmpfs size."""
    if not effective_isolation(policy.security_policy).read_only_root:
        return {}
    size = int(policy.resource_limits.sandbox.tmpfs_bytes)
    paths = {"/tmp": size}
    if isinstance(writable_paths, dict):
        paths.update({p: int(n) for p, n in writable_paths.items()})
    else:
        paths.update({p: size for p in (writable_paths or [])})
    return paths
