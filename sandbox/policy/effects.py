"""What every policy key does, and the test that proves it; or that it is accepted
and not enforced yet. One table, so no key can promise silently: a unit test walks
the schema and fails on a key in neither list, or on a named test that does not
exist; `cleanroom policy check` names each not-enforced key a file sets to a
non-default value; the README's key table is generated from here.

Keys are dotted paths under ``[cleanroom]``; sub-tables are not keys themselves.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sandbox.policy.model import ORIGIN_FIELDS, PolicyConfig


class Effect(msgspec.Struct, frozen=True):
    effect: str
    proven_by: tuple[str, ...]  # pytest node ids


class PolicyNotice(msgspec.Struct, frozen=True):
    key: str
    message: str
    severity: str = "not-enforced"


_RL = "tests/security/test_resource_limits.py::"
_NP = "tests/security/test_network_policy.py::"
_FX = "tests/security/test_policy_effects.py::"
_ER = "tests/integration/test_engine_run.py::"
_MT = "tests/integration/test_mounts.py::"

EFFECTS: dict[str, Effect] = {
    "enable_singleton_containers": Effect(
        "services are created once and reused by later tests, processes and runs; off: each environment gets its own",
        ("tests/integration/test_services.py::test_without_singletons_each_environment_gets_its_own",
         "tests/integration/test_services.py::test_singleton_is_reused_by_another_process")),
    "container_startup_timeout": Effect(
        "how long a sandbox may take to start and a service to become ready",
        (_FX + "test_container_startup_timeout_bounds_a_services_wait",)),
    "test_execution_timeout": Effect(
        "the default wall-clock limit of one sandbox run and of one execute_test call",
        (_FX + "test_test_execution_timeout_is_the_default_sandbox_and_test_limit",)),
    "enable_deterministic_execution": Effect(
        "pins TZ, locale, hostname and seeds (CLEANROOM_SEED, PYTHONHASHSEED) in every sandbox",
        (_ER + "test_deterministic_execution_pins_seed_hostname_and_tz",)),
    "deterministic_seed": Effect(
        "the seed given to sandboxes (and to the test process's random) under deterministic execution",
        (_ER + "test_deterministic_execution_pins_seed_hostname_and_tz",)),
    "resource_limits.max_cpu_usage_percent": Effect(
        "the environment's CPU budget, a share of the whole host, for all its sandboxes together",
        (_FX + "test_the_environment_cpu_budget_holds_its_sandboxes",)),
    "resource_limits.max_memory_usage_bytes": Effect(
        "the environment's memory budget (parent cgroup); a sandbox going over it is killed and the budget named",
        (_RL + "test_the_environment_memory_budget_binds_its_sandboxes_and_is_named",)),
    "resource_limits.max_network_bandwidth_bytes_per_sec": Effect(
        "egress rate of each sandbox (tbf qdisc in its network namespace)",
        (_NP + "test_bandwidth_limit_shapes_egress_to_a_sink_on_the_environment_network",)),
    "resource_limits.max_container_count": Effect(
        "sandboxes and services alive at once; one more is refused before it is created",
        (_RL + "test_container_count_refuses_the_third_before_creating_it",)),
    "resource_limits.enable_resource_monitoring": Effect(
        "on: a host that cannot enforce cgroup limits refuses to open an environment; off: runs unconfined, warned",
        ("tests/unit/test_confine_required.py::test_on_without_cgroup_delegation_refuses_naming_the_key",
         "tests/unit/test_confine_required.py::test_off_without_cgroup_delegation_runs_unconfined")),
    "resource_limits.sandbox.memory_bytes": Effect(
        "memory limit of each sandbox; going over is an OOM kill reported as a memory breach",
        (_RL + "test_memory_bomb_is_killed_and_reported_as_memory",)),
    "resource_limits.sandbox.memory_swap_bytes": Effect(
        "memory+swap limit of each sandbox (unset: no swap)",
        (_FX + "test_memory_swap_bytes_is_written_and_read_back",)),
    "resource_limits.sandbox.cpu_percent": Effect(
        "CPU quota of each sandbox (100 = one core)",
        (_RL + "test_cpu_hog_under_half_a_core",)),
    "resource_limits.sandbox.pids_limit": Effect(
        "process count limit of each sandbox; a hit is reported as a pids breach",
        (_RL + "test_fork_bomb_is_contained_and_reported_as_pids",)),
    "resource_limits.sandbox.io_weight": Effect(
        "block-IO weight of each sandbox, read back with the disk schedulers that honour it",
        (_RL + "test_io_weight_is_written_and_read_back_with_the_scheduler",)),
    "resource_limits.sandbox.tmpfs_bytes": Effect(
        "size of the sandbox's /tmp (a tmpfs, with a read-only root)",
        (_FX + "test_tmpfs_size_bounds_tmp",)),
    "security_policy.enable_network_isolation": Effect(
        "on: loopback only (network mode none); off: egress through slirp4netns",
        (_FX + "test_network_isolation_off_gives_an_interface_beyond_loopback",)),
    "security_policy.enable_filesystem_isolation": Effect(
        "on: read-only root (as the security level says); off: a writable root whatever the level",
        (_FX + "test_filesystem_isolation_and_read_only_root",)),
    "security_policy.enable_process_isolation": Effect(
        "on: private PID and IPC namespaces; off (refused at High and above): the host's PID namespace",
        ("tests/security/test_process_isolation.py::test_process_isolation_on_shows_only_the_sandboxes_own_processes",
         "tests/security/test_process_isolation.py::test_process_isolation_off_at_low_sees_the_host_processes",
         "tests/unit/test_policy_compliance.py::test_process_isolation_off_is_refused_at_high_and_above")),
    "security_policy.allowed_ports": Effect(
        "the only container ports a service may publish (always on 127.0.0.1); others are refused before creation",
        (_NP + "test_port_outside_allowed_ports_is_refused_before_creation",)),
    "security_policy.blocked_addresses": Effect(
        "CIDRs made unreachable inside the sandbox (with egress), read back before start",
        (_NP + "test_blocked_cidr_is_refused_at_once_inside_the_sandbox",)),
    "security_policy.allowed_addresses": Effect(
        "in allowlist mode, the only CIDRs routed; every other destination is unreachable",
        (_NP + "test_allowlist_routes_only_the_listed_networks",)),
    "security_policy.network_mode": Effect(
        "none (loopback only), egress, or allowlist; unset: from enable_network_isolation",
        (_NP + "test_allowlist_routes_only_the_listed_networks",)),
    "security_policy.allow_host_loopback": Effect(
        "with egress, the host's 127.0.0.1 is reachable at 10.0.2.2",
        (_NP + "test_allowlist_routes_only_the_listed_networks",)),
    "security_policy.enable_data_redaction": Effect(
        "off: captured output, logs and audit records are not redacted",
        (_FX + "test_redaction_keys",)),
    "security_policy.redaction_patterns": Effect(
        "extra regular expressions masked everywhere output goes",
        (_FX + "test_redaction_keys",)),
    "security_policy.enable_builtin_redaction_rules": Effect(
        "the built-in credential rules (passwords, tokens, cloud keys, PEM keys)",
        (_FX + "test_redaction_keys",)),
    "security_policy.enable_audit_logging": Effect(
        "writes the hash-chained audit trail; off: none",
        (_FX + "test_audit_logging_off_writes_no_trail",)),
    "security_policy.audit_level": Effect(
        "which events are recorded (High: breaches, redactions, commands, refusals; Maximum: output digests)",
        (_NP + "test_port_outside_allowed_ports_is_refused_before_creation",
         "tests/security/test_secrets_never_leak.py::test_library_run_masks_everything_and_the_audit_verifies")),
    "security_policy.audit_hmac_key_env": Effect(
        "the variable holding the audit chain's HMAC key; unset variable: the environment does not open",
        (_FX + "test_audit_hmac_key_env_keys_the_chain",)),
    "security_policy.audit_log_dir": Effect(
        "where audit trails are written (CLEANROOM_AUDIT_DIR overrides it)",
        (_FX + "test_audit_log_dir_is_where_the_trail_goes",)),
    "security_policy.security_level": Effect(
        "the isolation preset: root filesystem, capabilities, no-new-privileges (Maximum: also no network)",
        (_ER + "test_strict_policy_confines_the_process",
         _FX + "test_capabilities_and_no_new_privileges_follow_their_keys")),
    "security_policy.compliance_standards": Effect(
        "names are checked at load; an unmet control of a named standard stops an environment from opening "
        "and fails `policy check`",
        ("tests/unit/test_policy_compliance.py::test_soc2_without_an_hmac_key_is_refused_with_the_control_named",
         "tests/unit/test_policy_compliance.py::test_each_missing_control_is_refused_naming_it_and_its_key",
         "tests/unit/test_policy_compliance.py::"
         "test_parsing_checks_names_but_an_environment_refuses_unmet_controls_before_making_anything")),
    "security_policy.read_only_root": Effect(
        "overrides the level's read-only root",
        (_FX + "test_filesystem_isolation_and_read_only_root",)),
    "security_policy.drop_all_capabilities": Effect(
        "overrides the level: drop every capability but allowed_capabilities; false keeps Podman's default set",
        (_FX + "test_capabilities_and_no_new_privileges_follow_their_keys",)),
    "security_policy.allowed_capabilities": Effect(
        "overrides the level: the capabilities kept after dropping all",
        (_FX + "test_capabilities_and_no_new_privileges_follow_their_keys",)),
    "security_policy.no_new_privileges": Effect(
        "overrides the level: the no-new-privileges flag",
        (_FX + "test_capabilities_and_no_new_privileges_follow_their_keys",)),
    "security_policy.seccomp_profile": Effect(
        "a seccomp profile file for every sandbox (\"default\": Podman's)",
        (_FX + "test_seccomp_profile_path_is_applied",)),
    "security_policy.allowed_mount_paths": Effect(
        "host paths a sandbox may bind-mount (unset: the current directory); a path outside them, a symlink or `..` "
        "out of them, devices, sockets and the Podman socket are refused before a container exists",
        (_MT + "test_a_refused_mount_never_creates_a_container",
         _MT + "test_cli_mounts_workdir_and_stdin_with_the_default_project_directory")),
    "security_policy.allow_writable_mounts": Effect(
        "off: every bind mount is read-only and a writable one is refused; on: `:rw` mounts are writable",
        (_MT + "test_a_read_only_mount_cannot_be_written_and_a_writable_one_can_when_allowed",
         _MT + "test_a_refused_mount_never_creates_a_container")),
    "security_policy.max_copy_out_bytes": Effect(
        "the most a session's read_file/copy_out brings back (the tar stream); more is refused, nothing is written",
        ("tests/integration/test_sessions.py::test_read_back_is_bounded_by_max_copy_out_bytes",)),
    "security_policy.allowed_registries": Effect(
        "registries (host[:port] or host/path prefixes) missing images may be pulled from; others, and short names, "
        "are refused before any network call; empty: no pulls",
        ("tests/integration/test_images.py::test_a_refused_registry_is_refused_before_any_network_call",
         "tests/integration/test_images.py::test_pull_with_progress_and_the_digest")),
}

_ISSUE_11 = "monitoring and alerting are not built yet (issue 11)"
_ISSUE_12 = "not built yet (issue 12)"
NOT_ENFORCED: dict[str, str] = {
    "enable_coverage_tracking": "coverage from inside sandboxes is " + _ISSUE_12,
    "enable_snapshot_testing": "snapshot testing is " + _ISSUE_12,
    "enable_tracing": "tracing is not built yet (issue 11)",
    "enable_monitoring": _ISSUE_11,
    "resource_limits.max_disk_usage_bytes": "disk budgets are not built yet (issue 13)",
    "resource_limits.max_test_execution_time": "the per-test limit of the pytest plugin is not built yet (issue 13); "
                                               "test_execution_timeout is what applies",
    "resource_limits.resource_cleanup_timeout": "closing an environment is not bounded yet (issue 13)",
    "performance_monitoring.enable_monitoring": _ISSUE_11,
    "performance_monitoring.metrics_interval": "monitoring samples are not built yet (issue 11); today it only paces "
                                               "the cgroup sampler behind peak CPU figures, which no test proves",
    "performance_monitoring.enable_profiling": "per-phase timings are not built yet (issue 11)",
    "performance_monitoring.enable_memory_tracking": "usage time series are not built yet (issue 11)",
    "performance_monitoring.thresholds.max_cpu_usage_percent": "threshold alerts are not built yet (issue 11)",
    "performance_monitoring.thresholds.max_memory_usage_bytes": "threshold alerts are not built yet (issue 11)",
    "performance_monitoring.thresholds.max_test_execution_time": "threshold alerts are not built yet (issue 11)",
    "performance_monitoring.thresholds.max_container_startup_time": "threshold alerts are not built yet (issue 11)",
}


def schema_keys(struct: type[msgspec.Struct] = PolicyConfig, prefix: str = "") -> list[str]:
    """Every key of the schema, walking sub-tables (Struct-typed fields) recursively."""
    out: list[str] = []
    for field in msgspec.structs.fields(struct):
        if not prefix and field.name in ORIGIN_FIELDS:
            continue
        sub = field.type if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct) else None
        if sub is not None:
            out += schema_keys(sub, f"{prefix}{field.name}.")
        else:
            out.append(prefix + field.name)
    return out


def value_at(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def not_enforced(cfg: PolicyConfig) -> list[PolicyNotice]:
    """A notice for each not-enforced key set to something other than its default."""
    default = PolicyConfig()
    return [PolicyNotice(f"cleanroom.{key}", f"accepted, not yet enforced ({reason})")
            for key, reason in NOT_ENFORCED.items() if value_at(cfg, key) != value_at(default, key)]


def markdown_table() -> str:
    """The README's key table: every key, what it does or that it is not enforced yet."""
    rows = ["| key | effect |", "| --- | --- |"]
    for key in schema_keys():
        what = EFFECTS[key].effect if key in EFFECTS else f"*accepted, not yet enforced*: {NOT_ENFORCED[key]}"
        rows.append(f"| `{key}` | {what} |")
    return "\n".join(rows) + "\n"


def write_readme(path: str = "README.md") -> None:
    """Regenerate the README's key table between its markers."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    begin, end = "<!-- policy-keys:begin -->\n", "<!-- policy-keys:end -->"
    head, rest = text.split(begin, 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(head + begin + markdown_table() + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    write_readme()
