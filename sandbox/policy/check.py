"""Warnings for settings that load but are risky: security off, limits too loose or
too tight. Thresholds are fixed numbers, not host readings, so the same file gets
the same verdict on every machine.

Calibrated on the reference guide: its "Good" blocks (8 GiB and 16 GiB budgets, CPU
70-80 %, 10-50 containers) draw no warning; each risky key of its "Avoid" blocks
(CPU 10 % or 100 %, 1 GiB, 1 or 100 containers, every security switch off, level
Minimal) draws one. 16 GiB itself is not "too loose": the guide's production
example uses it; above it is.
"""

from __future__ import annotations

import msgspec

from sandbox.policy.model import GiB, MiB, PolicyConfig


class PolicyWarning(msgspec.Struct, frozen=True):
    key: str
    message: str
    severity: str = "warning"


_SECURITY_SWITCHES = {
    "enable_network_isolation": "network isolation is off: sandboxes get a network stack with egress",
    "enable_filesystem_isolation": "filesystem isolation is off: the sandbox root filesystem is writable",
    "enable_process_isolation": "process isolation is off: sandboxes share the host's PID namespace and see "
                                "its processes (the IPC namespace stays private)",
    "enable_data_redaction": "data redaction is off: secrets in output are shown as they are",
    "enable_audit_logging": "audit logging is off: no tamper-evident record of what ran",
}


def check_policy(cfg: PolicyConfig) -> list[PolicyWarning]:
    out: list[PolicyWarning] = []
    sp, rl = cfg.security_policy, cfg.resource_limits

    def warn(key: str, message: str) -> None:
        out.append(PolicyWarning(f"cleanroom.{key}", message))

    for name, message in _SECURITY_SWITCHES.items():
        if not getattr(sp, name):
            warn(f"security_policy.{name}", message)
    if sp.allow_host_loopback and not sp.enable_network_isolation:
        warn("security_policy.allow_host_loopback", "sandboxes can reach every service on the host's loopback")
    if sp.security_level in ("Minimal", "Low"):
        warn("security_policy.security_level", f"security level {sp.security_level} keeps capabilities and a "
             "writable root; use High or Maximum")
    if sp.seccomp_profile not in (None, "default") and sp.security_level in ("High", "Maximum"):
        warn("security_policy.seccomp_profile", f"your own profile replaces cleanroom's hardened one at "
             f"{sp.security_level}: only the denials your file makes apply")
    broad = [p for p in sp.allowed_mount_paths or [] if p.rstrip("/") in ("", "~") or p in ("/home", "/root")]
    if broad:
        warn("security_policy.allowed_mount_paths", f"{broad} lets sandboxes mount the whole host or home "
             "directory (credentials, SSH keys); list the project directories they need")
    if sp.allow_writable_mounts:
        warn("security_policy.allow_writable_mounts", "sandboxes may write to host directories they mount")
    if sp.enable_data_redaction and not sp.enable_builtin_redaction_rules and not sp.redaction_patterns:
        warn("security_policy.redaction_patterns", "redaction is on but has no rules (built-in rules off, no patterns)")

    if rl.max_cpu_usage_percent >= 100:
        warn("resource_limits.max_cpu_usage_percent", "too permissive: 100 % of the host leaves nothing for the engine")
    elif rl.max_cpu_usage_percent <= 10:
        warn("resource_limits.max_cpu_usage_percent", f"too restrictive: {rl.max_cpu_usage_percent:g} % of the host")
    if rl.max_memory_usage_bytes > 16 * GiB:
        warn("resource_limits.max_memory_usage_bytes", "too permissive: more than 16 GiB for test sandboxes")
    elif rl.max_memory_usage_bytes < 2 * GiB:
        warn("resource_limits.max_memory_usage_bytes", "too restrictive: under 2 GiB for all sandboxes together")
    if rl.max_container_count >= 100:
        warn("resource_limits.max_container_count", "too permissive: 100 or more containers at once")
    elif rl.max_container_count <= 1:
        warn("resource_limits.max_container_count", "too restrictive: one container rules out services beside tests")
    sb = rl.sandbox
    if sb.memory_bytes is not None and sb.memory_bytes < 16 * MiB:
        warn("resource_limits.sandbox.memory_bytes", "too restrictive: under 16 MiB per sandbox")
    if sb.memory_bytes is None:
        warn("resource_limits.sandbox.memory_bytes", "no per-sandbox memory limit")
    elif sb.memory_bytes > rl.max_memory_usage_bytes:
        # Loads (the budget still caps it), but the per-sandbox figure is then a lie.
        warn("resource_limits.sandbox.memory_bytes", "larger than the environment's whole memory budget "
             "(resource_limits.max_memory_usage_bytes); the budget is what applies")
    if sb.pids_limit is None:
        warn("resource_limits.sandbox.pids_limit", "no per-sandbox pids limit: a fork bomb is not contained")
    if cfg.test_execution_timeout > 3600:
        warn("test_execution_timeout", "too permissive: a hung test may run over an hour")
    if cfg.container_startup_timeout < 5:
        warn("container_startup_timeout", "too restrictive: under 5 s to start a container")
    return out
