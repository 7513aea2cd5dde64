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
_FX = "tests/security/test_policy_key_effects.py::"
_ER = "tests/integration/test_engine_run.py::"
_OB = "tests/integration/test_observe.py::"
_RR = "tests/integration/test_run_report.py::"
_MT = "tests/integration/test_mounts.py::"
_PL = "tests/integration/test_pool.py::"
_SV = "tests/security/test_shared_services_cgroup.py::"

EFFECTS: dict[str, Effect] = {
    "enable_singleton_containers": Effect(
        "services are created once and reused by later tests, processes and runs; off: each environment gets its own",
        ("tests/integration/test_services.py::test_without_singletons_each_environment_gets_its_own",
         "tests/integration/test_services.py::test_singleton_is_reused_by_another_process")),
    "container_startup_timeout": Effect(
        "how long a sandbox may take to start and a service to become ready",
        (_FX + "test_container_startup_timeout_bounds_a_services_wait",)),
    "test_execution_timeout": Effect(
        "the default wall-clock limit of one sandbox run (a test as a whole has max_test_execution_time)",
        (_FX + "test_test_execution_timeout_is_the_default_limit_of_one_sandbox",)),
    "enable_deterministic_execution": Effect(
        "pins TZ, locale, hostname and seeds (CLEANROOM_SEED, PYTHONHASHSEED) in every sandbox",
        (_ER + "test_deterministic_execution_pins_seed_hostname_and_tz",)),
    "deterministic_seed": Effect(
        "the seed given to sandboxes (and to the test process's random) under deterministic execution",
        (_ER + "test_deterministic_execution_pins_seed_hostname_and_tz",)),
    "deterministic_clock": Effect(
        "under deterministic execution, the sandboxes' wall clock frozen at this instant (libfaketime, mounted "
        "read-only and preloaded; dynamically linked programs only); services keep the real clock",
        ("tests/integration/test_deterministic_clock.py::"
         "test_dynamically_linked_programs_see_the_frozen_clock_while_time_passes",
         "tests/integration/test_deterministic_clock.py::test_two_runs_of_a_suite_write_byte_identical_snapshots")),
    "enable_snapshot_testing": Effect(
        "the `snapshot` fixture and RunResult.assert_matches_snapshot compare redacted, normalised output with "
        "__snapshots__/; off: using them fails naming the key",
        ("tests/integration/test_snapshots.py::"
         "test_snapshots_are_written_on_update_compared_after_and_never_hold_a_secret",
         "tests/integration/test_snapshots.py::test_with_the_key_off_snapshots_fail_naming_the_key")),
    "enable_coverage_tracking": Effect(
        "with `--cleanroom-coverage-report` (term, xml or html): one report of the test process and of the Python its "
        "sandboxes run (cleanroom mounts the project and coverage.py read-only, its data directory writable), mapped "
        "back to the checkout; off: asking for the report is a usage error",
        ("tests/integration/test_coverage.py::"
         "test_a_function_run_only_inside_a_sandbox_shows_as_covered_at_its_host_path",
         "tests/unit/test_testing_coverage_attach.py::"
         "test_the_coverage_mounts_are_in_every_sandbox_only_while_tracking_is_on",
         "tests/unit/test_testing_coverage.py::"
         "test_the_plugin_reports_the_test_process_coverage_and_refuses_without_the_key")),
    "resource_limits.max_cpu_usage_percent": Effect(
        "the environment's CPU budget, a share of the whole host, for all its sandboxes together",
        (_FX + "test_the_environment_cpu_budget_holds_its_sandboxes",)),
    "resource_limits.max_memory_usage_bytes": Effect(
        "the environment's memory budget (parent cgroup; singletons are outside it, see services.*); a sandbox "
        "going over it is killed and the budget named",
        (_RL + "test_the_environment_memory_budget_binds_its_sandboxes_and_is_named",)),
    "resource_limits.max_network_bandwidth_bytes_per_sec": Effect(
        "egress rate of each sandbox (tbf qdisc in its network namespace)",
        (_NP + "test_bandwidth_limit_shapes_egress_to_a_sink_on_the_environment_network",)),
    "resource_limits.max_container_count": Effect(
        "sandboxes and services alive at once; one more waits for a place (or is refused, see "
        "on_container_limit) before anything is created",
        (_RL + "test_container_count_refuses_the_third_before_creating_it",
         _RL + "test_sixteen_concurrent_sandboxes_under_a_limit_of_four_all_run_never_more_than_four")),
    "resource_limits.on_container_limit": Effect(
        '"wait": at the limit a new sandbox waits for a place, up to container_startup_timeout; '
        '"refuse": it fails at once',
        ("tests/unit/test_confine_limits.py::test_at_the_limit_a_new_sandbox_waits_for_a_place_and_takes_the_freed_one",
         "tests/unit/test_confine_limits.py::test_waiting_is_bounded_by_the_startup_timeout",
         _RL + "test_container_count_refuses_the_third_before_creating_it")),
    "resource_limits.max_test_execution_time": Effect(
        "the per-test wall clock of the pytest plugin and of execute_test: the test fails with TimeoutExceeded "
        "naming the key, and its sandboxes are killed and removed",
        ("tests/integration/test_test_time_limits.py::test_a_plugin_test_past_max_test_execution_time_fails_naming_it",
         "tests/integration/test_test_time_limits.py::test_execute_test_kills_the_sandboxes_of_a_test_out_of_time")),
    "resource_limits.resource_cleanup_timeout": Effect(
        "bounds closing an environment; what is not removed in time is named in an error (log and audit) "
        "and left for cleanroom prune",
        ("tests/integration/test_cleanup_timeout.py::test_closing_past_the_timeout_names_what_is_left_and_the_rest_still_goes",
         "tests/integration/test_cleanup_timeout.py::test_within_the_timeout_nothing_is_reported")),
    "resource_limits.max_disk_usage_bytes": Effect(
        "the environment's disk budget: tmpfs is reserved from it before creation (a sandbox that cannot fit "
        "is refused); a sandbox whose writable layer and writable mounts grow past what is left of it is killed "
        "with a disk breach",
        ("tests/security/test_disk_limits.py::test_a_sandbox_that_cannot_fit_the_disk_budget_is_refused_before_creation",
         "tests/security/test_disk_limits.py::test_bytes_written_under_a_writable_mount_count_against_the_disk_budget",
         "tests/unit/test_confine_disk.py::test_without_a_share_the_budget_left_beside_the_others_is_the_limit")),
    "resource_limits.sandbox.disk_bytes": Effect(
        "what one sandbox may write to a writable root's container layer and its writable mounts; past it, it is "
        "killed within one sampling interval with a disk breach",
        ("tests/security/test_disk_limits.py::test_a_disk_bomb_under_a_32_mib_share_is_stopped_and_reported_as_disk",
         "tests/unit/test_confine_disk.py::test_what_a_writable_mount_grew_by_counts_and_past_the_share_is_killed",
         "tests/unit/test_confine_disk.py::test_a_layer_past_its_share_is_killed_once_with_a_disk_breach")),
    "resource_limits.enable_resource_monitoring": Effect(
        "on: running sandboxes' usage is sampled at least every second; off: only at metrics_interval",
        ("tests/unit/test_confine_limits.py::test_resource_monitoring_samples_running_sandboxes_within_a_second",)),
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
    "resource_limits.services.memory_bytes": Effect(
        "memory limit of the shared-services cgroup, all singletons together (outside every environment's budget); "
        "set by the environment that creates a singleton while none runs there, a policy asking otherwise sees "
        "the difference in check_resource_limits",
        (_SV + "test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters",
         "tests/unit/test_confine_shared.py::"
         "test_the_group_keeps_the_first_policys_limits_and_a_later_policy_sees_a_mismatch")),
    "resource_limits.services.cpu_percent": Effect(
        "CPU quota of the shared-services cgroup, all singletons together (100 = one core)",
        (_SV + "test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters",)),
    "resource_limits.services.pids_limit": Effect(
        "process count limit of the shared-services cgroup, all singletons together",
        (_SV + "test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters",)),
    "resource_limits.services.service_memory_bytes": Effect(
        "memory limit of each singleton (its own cgroup in the shared-services one, set by the policy that "
        "creates it); going over is an OOM kill",
        (_SV + "test_a_singleton_past_its_services_memory_limit_is_oom_killed",
         _SV + "test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters")),
    "resource_limits.services.service_pids_limit": Effect(
        "process count limit of each singleton, set by the policy that creates it",
        (_SV + "test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters",)),
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
    "security_policy.allow_unconfined": Effect(
        "a host without cgroup delegation is an error unless this opts out (refused at High and above); "
        "then the audit and every result say unconfined",
        ("tests/unit/test_confine_required.py::test_without_cgroup_delegation_an_environment_refuses_naming_the_fix",
         "tests/unit/test_confine_required.py::test_allow_unconfined_runs_without_limits_and_says_so",
         "tests/unit/test_confine_required.py::test_allow_unconfined_is_refused_at_high_and_above")),
    "security_policy.redaction_rules_disabled": Effect(
        "the built-in rules named are not applied; an unknown id is an error with a did-you-mean",
        ("tests/unit/test_policy_redaction.py::test_disabled_rule_is_not_applied",
         "tests/unit/test_policy_redaction.py::test_unknown_disabled_id_names_the_key_and_suggests")),
    "security_policy.redaction_rules": Effect(
        "extra rules (id, regex, keywords, examples) mask under their own id, validated like the built-in pack",
        ("tests/unit/test_policy_redaction.py::test_extra_rule_masks_and_is_named",
         "tests/unit/test_policy_redaction.py::test_bad_extra_rules_name_their_key")),
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
    "enable_tracing": Effect(
        "OpenTelemetry spans (environment, test, sandbox/service, engine phases) over OTLP/HTTP to "
        "OTEL_EXPORTER_OTLP_ENDPOINT, else to a JSON Lines file",
        (_OB + "test_spans_of_a_test_with_two_sandboxes_reach_an_otlp_receiver",
         _RR + "test_a_real_runs_report_renders_in_chromium")),
    "enable_monitoring": Effect(
        "samples every sandbox and service from its cgroup at metrics_interval and raises threshold alerts",
        (_RR + "test_a_real_runs_report_renders_in_chromium",)),
    "performance_monitoring.enable_monitoring": Effect(
        "the same as enable_monitoring: samples at metrics_interval and threshold alerts, without a call",
        (_OB + "test_monitoring_keys_alone_sample_and_alert_on_cpu",)),
    "performance_monitoring.metrics_interval": Effect(
        "seconds between usage samples (sub-second allowed); a result's time series has one per interval",
        (_OB + "test_a_results_time_series_has_a_sample_per_interval_and_phase_timings",)),
    "performance_monitoring.enable_profiling": Effect(
        "each result carries the seconds the engine spent in create, init, confine, start, run, wait, remove",
        (_OB + "test_a_results_time_series_has_a_sample_per_interval_and_phase_timings",)),
    "performance_monitoring.enable_memory_tracking": Effect(
        "each result carries its time series (time, memory, CPU percent, pids) at metrics_interval",
        (_OB + "test_a_results_time_series_has_a_sample_per_interval_and_phase_timings",)),
    "performance_monitoring.thresholds.max_cpu_usage_percent": Effect(
        "an alert while a container's CPU (a share of the whole host) is over it, resolved when it drops back",
        (_OB + "test_monitoring_keys_alone_sample_and_alert_on_cpu",)),
    "performance_monitoring.thresholds.max_memory_usage_bytes": Effect(
        "an alert while a container's memory is over it (events, audit, metric, log, webhook), resolved after",
        (_OB + "test_a_memory_threshold_crossing_fires_one_alert_to_a_webhook_and_resolves",)),
    "performance_monitoring.thresholds.max_test_execution_time": Effect(
        "an alert when a test runs longer, resolved by the next test within it",
        (_OB + "test_test_execution_time_threshold_fires_once_and_resolves_at_test_ends",)),
    "performance_monitoring.thresholds.max_container_startup_time": Effect(
        "an alert when a container takes longer from create to running, resolved by the next faster start",
        (_OB + "test_container_startup_time_threshold_fires_once_per_crossing",)),
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
    "pool.size": Effect(
        "a warm pool: that many sandboxes per image and run options are kept made, confined and waiting in "
        "cleanroom-helper; a run takes one (its command becomes the sandbox's first program), which is removed "
        "afterwards and never reused; refilled in the background, leaving one place of max_container_count free",
        (_PL + "test_a_pooled_run_is_a_new_members_first_and_only_program_and_the_member_goes",
         _PL + "test_pooled_runs_are_confined_filtered_and_redacted_like_cold_ones",
         _PL + "test_the_pool_stays_within_the_container_budget")),
    "pool.images": Effect(
        "images whose pools are filled when the environment opens (others fill after their first run)",
        (_PL + "test_close_removes_waiting_members_and_their_cgroups",)),
}

NOT_ENFORCED: dict[str, str] = {}


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
    updated = head + begin + markdown_table() + end + rest.split(end, 1)[1]  # before the file is truncated
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(updated)


if __name__ == "__main__":
    write_readme()
