"""Policy files: TOML → typed, validated CleanroomConfig (with an overlay applied)."""

from sandbox.policy.check import PolicyWarning, check_policy
from sandbox.policy.isolation import Isolation, effective_isolation
from sandbox.policy.loader import load_policy, load_policy_text
from sandbox.policy.model import (
    CleanroomConfig,
    PerformanceMonitoring,
    ResourceLimits,
    SandboxLimits,
    SecurityPolicy,
    Thresholds,
)
from sandbox.policy.schema import policy_json_schema
from sandbox.policy.units import parse_duration, parse_size

__all__ = [
    "CleanroomConfig",
    "ResourceLimits",
    "SandboxLimits",
    "SecurityPolicy",
    "PerformanceMonitoring",
    "Thresholds",
    "Isolation",
    "effective_isolation",
    "load_policy",
    "load_policy_text",
    "check_policy",
    "PolicyWarning",
    "policy_json_schema",
    "parse_size",
    "parse_duration",
]
