"""The policy schema as msgspec Structs: the reference guide's keys, plus what the
engine needs to confine a sandbox (per-sandbox limits, network mode, isolation
switches). Every field has a default, so an empty ``[cleanroom]`` is a valid policy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import msgspec
from msgspec import Meta

Level = Literal["Minimal", "Low", "Medium", "High", "Maximum"]
LEVELS: tuple[str, ...] = ("Minimal", "Low", "Medium", "High", "Maximum")
NetworkMode = Literal["none", "egress", "allowlist"]

KiB, MiB, GiB = 1024, 1024**2, 1024**3

# Sizes stop at the int64 maximum: cgroup files and Podman's API take signed 64-bit
# numbers, and a bigger figure is a typo, not a budget.
INT64_MAX = 2**63 - 1
PositiveInt = Annotated[int, Meta(gt=0, le=INT64_MAX)]
PositiveFloat = Annotated[float, Meta(gt=0)]
Percent = Annotated[float, Meta(gt=0, le=100)]
Port = Annotated[int, Meta(ge=1, le=65535)]
# An instant with its offset, as the reference guide writes it: 2026-01-01T00:00:00Z.
Instant = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")]


# Frozen: one loaded policy is shared by the environment, the engine and the audit
# log; a change goes through with_changes(), so a digest never goes stale.
class _Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    pass


class SandboxLimits(_Base):
    """Limits of one sandbox (its own cgroup under the environment's)."""

    memory_bytes: PositiveInt | None = 512 * MiB
    memory_swap_bytes: PositiveInt | None = None  # memory+swap; None: same as memory (no swap)
    cpu_percent: PositiveFloat | None = None  # 100 = one full core; None: no quota
    pids_limit: Annotated[int, Meta(ge=1, le=INT64_MAX)] | None = 512
    io_weight: Annotated[int, Meta(ge=10, le=1000)] | None = None
    tmpfs_bytes: PositiveInt = 64 * MiB  # /tmp when the root filesystem is read-only
    # What one sandbox may write to its container layer (a writable root only; tmpfs
    # mounts are capped by their sizes). None: only the environment's disk budget.
    disk_bytes: PositiveInt | None = None


class ServicesLimits(_Base):
    """Limits of the shared-services cgroup: every singleton service of this user together
    (they outlive the environments that made them, so no environment's budget holds them),
    and each singleton in it. The policy of the environment that creates a singleton sets them."""

    memory_bytes: PositiveInt | None = 2 * GiB  # all singletons together
    cpu_percent: PositiveFloat | None = None  # all singletons together; 100 = one core; None: no quota
    pids_limit: Annotated[int, Meta(ge=1, le=INT64_MAX)] | None = 2048  # all singletons together
    service_memory_bytes: PositiveInt | None = 1 * GiB  # each singleton
    service_pids_limit: Annotated[int, Meta(ge=1, le=INT64_MAX)] | None = 512  # each singleton


class ResourceLimits(_Base):
    """The environment's budget (all its sandboxes together) and per-sandbox limits."""

    max_cpu_usage_percent: Percent = 80.0
    max_memory_usage_bytes: PositiveInt = 8 * GiB
    max_disk_usage_bytes: PositiveInt = 100 * GiB
    max_network_bandwidth_bytes_per_sec: PositiveInt | None = None
    max_container_count: Annotated[int, Meta(ge=1, le=INT64_MAX)] = 10
    # At max_container_count a new sandbox waits for a slot (up to container_startup_timeout),
    # or with "refuse" fails at once.
    on_container_limit: Literal["wait", "refuse"] = "wait"
    max_test_execution_time: PositiveFloat = 300.0
    enable_resource_monitoring: bool = True
    resource_cleanup_timeout: PositiveFloat = 60.0
    sandbox: SandboxLimits = msgspec.field(default_factory=SandboxLimits)
    services: ServicesLimits = msgspec.field(default_factory=ServicesLimits)


class RedactionRule(_Base):
    """A policy's own redaction rule, checked like the built-in ones: ``examples`` must be
    masked, ``non_examples`` must not (mark the secret part of an example with «...»)."""

    id: str
    regex: str
    keywords: list[str] = msgspec.field(default_factory=list)
    examples: list[str] = msgspec.field(default_factory=list)
    non_examples: list[str] = msgspec.field(default_factory=list)


class SecurityPolicy(_Base):
    enable_network_isolation: bool = True
    enable_filesystem_isolation: bool = True
    enable_process_isolation: bool = True
    allowed_ports: list[Port] = msgspec.field(default_factory=lambda: [5432, 6379])
    blocked_addresses: list[str] = msgspec.field(default_factory=list)
    allowed_addresses: list[str] = msgspec.field(default_factory=list)
    network_mode: NetworkMode | None = None  # None: derived from enable_network_isolation
    # With egress, let the sandbox reach services on the host's 127.0.0.1 through the
    # gateway 10.0.2.2 (slirp4netns' allow_host_loopback). Off: the host stays unreachable.
    allow_host_loopback: bool = False
    enable_data_redaction: bool = True
    redaction_patterns: list[str] = msgspec.field(default_factory=list)
    enable_builtin_redaction_rules: bool = True
    redaction_rules_disabled: list[str] = msgspec.field(default_factory=list)  # built-in rule ids
    redaction_rules: list[RedactionRule] = msgspec.field(default_factory=list)
    enable_audit_logging: bool = True
    audit_level: Level = "Medium"
    audit_hmac_key_env: str | None = None
    audit_log_dir: str | None = None
    security_level: Level = "High"
    compliance_standards: list[str] = msgspec.field(default_factory=list)
    # Run without cgroup limits when the host cannot enforce them (refused at High and
    # above); every result and the audit then say "unconfined". Off: such a host is an error.
    allow_unconfined: bool = False
    # Isolation switches; None takes the value from security_level's preset.
    read_only_root: bool | None = None
    drop_all_capabilities: bool | None = None
    allowed_capabilities: list[str] | None = None
    no_new_privileges: bool | None = None
    seccomp_profile: str | None = None  # "default" or a path to a JSON profile
    # Host paths a sandbox may bind-mount (relative ones: to the current directory);
    # None: the current (project) directory only. Mounts are read-only unless
    # allow_writable_mounts is on.
    allowed_mount_paths: list[str] | None = None
    allow_writable_mounts: bool = False
    # The most a session's read_file/copy_out may bring back (the tar stream), in bytes.
    max_copy_out_bytes: PositiveInt = 64 * MiB
    # Registries (host[:port], or host/path prefixes) images may be pulled from; empty:
    # none (images must be local or built). Judged before any network call.
    allowed_registries: list[str] = msgspec.field(default_factory=list)


class Thresholds(_Base):
    max_cpu_usage_percent: Percent = 80.0
    max_memory_usage_bytes: PositiveInt = 8 * GiB
    max_test_execution_time: PositiveFloat = 300.0
    max_container_startup_time: PositiveFloat = 120.0


class PerformanceMonitoring(_Base):
    enable_monitoring: bool = False
    metrics_interval: PositiveFloat = 10.0
    enable_profiling: bool = False
    enable_memory_tracking: bool = False
    thresholds: Thresholds = msgspec.field(default_factory=Thresholds)


class PoolPolicy(_Base):
    """A warm pool: sandboxes made ahead (created, confined, started in cleanroom-helper,
    waiting for their command), per image and run options, each used once."""

    size: Annotated[int, Meta(ge=0, le=64)] = 0  # waiting sandboxes per image and options; 0: off
    images: list[str] = msgspec.field(default_factory=list)  # filled when the environment opens


class PolicyConfig(_Base):
    """The ``[cleanroom]`` table's fields; ``sandbox.policy.config.CleanroomConfig`` adds
    the ways to make one (from a file, from text, the default)."""

    enable_singleton_containers: bool = True
    container_startup_timeout: PositiveFloat = 120.0
    test_execution_timeout: PositiveFloat = 300.0
    enable_deterministic_execution: bool = False
    deterministic_seed: int | None = None
    deterministic_clock: Instant | None = None  # the sandboxes' frozen wall clock (libfaketime)
    enable_coverage_tracking: bool = False
    enable_snapshot_testing: bool = False
    enable_tracing: bool = False
    enable_monitoring: bool = False
    resource_limits: ResourceLimits = msgspec.field(default_factory=ResourceLimits)
    security_policy: SecurityPolicy = msgspec.field(default_factory=SecurityPolicy)
    performance_monitoring: PerformanceMonitoring = msgspec.field(default_factory=PerformanceMonitoring)
    pool: PoolPolicy = msgspec.field(default_factory=PoolPolicy)
    # Where it came from; set by the loader, never read from TOML (the loader refuses them).
    source_file: str | None = None
    environment: str | None = None  # the overlay applied

    def digest(self) -> str:
        """SHA-256 of the effective policy, for the audit log (origin excluded)."""
        data = msgspec.to_builtins(self)
        data.pop("source_file", None)
        data.pop("environment", None)
        return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()

    def with_changes(self, **changes: Any) -> Self:
        return msgspec.structs.replace(self, **changes)


# Fields whose values are sizes or durations, for the loader's human forms.
SIZE_FIELDS: dict[str, set[str]] = {
    "resource_limits": {"max_memory_usage_bytes", "max_disk_usage_bytes", "max_network_bandwidth_bytes_per_sec"},
    "resource_limits.sandbox": {"memory_bytes", "memory_swap_bytes", "tmpfs_bytes", "disk_bytes"},
    "resource_limits.services": {"memory_bytes", "service_memory_bytes"},
    "security_policy": {"max_copy_out_bytes"},
    "performance_monitoring.thresholds": {"max_memory_usage_bytes"},
}
DURATION_FIELDS: dict[str, set[str]] = {
    "": {"container_startup_timeout", "test_execution_timeout"},
    "resource_limits": {"max_test_execution_time", "resource_cleanup_timeout"},
    "performance_monitoring": {"metrics_interval"},
    "performance_monitoring.thresholds": {"max_test_execution_time", "max_container_startup_time"},
}
SUBTABLES: dict[str, type[msgspec.Struct]] = {
    "resource_limits": ResourceLimits,
    "resource_limits.sandbox": SandboxLimits,
    "resource_limits.services": ServicesLimits,
    "security_policy": SecurityPolicy,
    "security_policy.redaction_rules": RedactionRule,
    "performance_monitoring": PerformanceMonitoring,
    "performance_monitoring.thresholds": Thresholds,
    "pool": PoolPolicy,
}
ORIGIN_FIELDS = {"source_file", "environment"}


def field_names(struct: type[msgspec.Struct]) -> list[str]:
    return [f for f in struct.__struct_fields__ if f not in ORIGIN_FIELDS]


def packaged_policies_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "policies"
