"""Policy files: TOML → typed, validated CleanroomConfig (with an overlay applied)."""

from sandbox.policy.check import PolicyWarning, check_policy
from sandbox.policy.config import CleanroomConfig
from sandbox.policy.isolation import Isolation, effective_isolation
from sandbox.policy.model import (
    PerformanceMonitoring,
    PolicyConfig,
    ResourceLimits,
    SandboxLimits,
    SecurityPolicy,
    ServicesLimits,
    Thresholds,
)
from sandbox.policy.schema import policy_json_schema
from sandbox.policy.units import parse_duration, parse_size

__all__ = [
    "CleanroomConfig",
    "ResourceLimits",
    "SandboxLimits",
    "ServicesLimits",
    "SecurityPolicy",
    "PerformanceMonitoring",
    "Thresholds",
    "Isolation",
    "effective_isolation",
    "PolicyConfig",
    "check_policy",
    "PolicyWarning",
    "policy_json_schema",
    "parse_size",
    "parse_duration",
]
