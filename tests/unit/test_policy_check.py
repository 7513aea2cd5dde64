"""check_policy: no warning for the guide's Good examples, one for each risky key of its Avoid examples."""

from __future__ import annotations

import pytest
from guide_blocks import blocks, split_avoid

from sandbox.policy import CleanroomConfig, check_policy

AVOID = [alt for _, k, t in blocks() if k == "avoid" for alt in split_avoid(t)]


def _keys(text: str) -> set[str]:
    return {w.key for w in check_policy(CleanroomConfig.from_toml(text))}


def test_avoid_examples_are_the_three_we_know():
    assert len(AVOID) == 3


def test_too_restrictive_warns_on_each_limit():
    text = next(t for t in AVOID if "restrictive" in t.lower())
    assert {"cleanroom.resource_limits.max_cpu_usage_percent", "cleanroom.resource_limits.max_memory_usage_bytes",
            "cleanroom.resource_limits.max_container_count"} <= _keys(text)


def test_too_permissive_warns_on_each_loose_limit():
    text = next(t for t in AVOID if "permissive" in t.lower())
    keys = _keys(text)
    assert {"cleanroom.resource_limits.max_cpu_usage_percent", "cleanroom.resource_limits.max_container_count"} <= keys


def test_disabled_security_warns_on_every_switch_and_the_level():
    text = next(t for t in AVOID if "security_policy" in t)
    keys = _keys(text)
    for name in ("enable_network_isolation", "enable_filesystem_isolation", "enable_process_isolation",
                 "enable_data_redaction", "enable_audit_logging", "security_level"):
        assert f"cleanroom.security_policy.{name}" in keys


def test_memory_over_16_gib_is_loose_16_itself_is_not():
    over = "[cleanroom.resource_limits]\nmax_memory_usage_bytes = \"32GiB\"\n"
    at = "[cleanroom.resource_limits]\nmax_memory_usage_bytes = \"16GiB\"\n"
    assert "cleanroom.resource_limits.max_memory_usage_bytes" in _keys(over)
    assert "cleanroom.resource_limits.max_memory_usage_bytes" not in _keys(at)


RL = "[cleanroom.resource_limits]\n"
SP = "[cleanroom.security_policy]\n"

# (toml, key that must warn) – one risky setting each.
RISKY = [
    (SP + "enable_network_isolation = false\n", "security_policy.enable_network_isolation"),
    (SP + "enable_filesystem_isolation = false\n", "security_policy.enable_filesystem_isolation"),
    # Off is refused at High and Maximum (test_policy_compliance); below, it warns.
    (SP + 'security_level = "Medium"\nenable_process_isolation = false\n', "security_policy.enable_process_isolation"),
    (SP + "enable_data_redaction = false\n", "security_policy.enable_data_redaction"),
    (SP + "enable_audit_logging = false\n", "security_policy.enable_audit_logging"),
    (SP + 'security_level = "Minimal"\n', "security_policy.security_level"),
    (SP + 'security_level = "Low"\n', "security_policy.security_level"),
    (RL + "max_cpu_usage_percent = 10.0\n", "resource_limits.max_cpu_usage_percent"),
    (RL + "max_cpu_usage_percent = 100\n", "resource_limits.max_cpu_usage_percent"),
    (RL + 'max_memory_usage_bytes = "1999MiB"\n', "resource_limits.max_memory_usage_bytes"),
    (RL + 'max_memory_usage_bytes = "17GiB"\n', "resource_limits.max_memory_usage_bytes"),
    (RL + "max_container_count = 1\n", "resource_limits.max_container_count"),
    (RL + "max_container_count = 100\n", "resource_limits.max_container_count"),
    (RL + 'max_memory_usage_bytes = "2GiB"\n[cleanroom.resource_limits.sandbox]\nmemory_bytes = "4GiB"\n',
     "resource_limits.sandbox.memory_bytes"),
]

# Just inside the thresholds: no warning.
FINE = [
    RL + "max_cpu_usage_percent = 10.5\n",
    RL + "max_cpu_usage_percent = 99.5\n",
    RL + 'max_memory_usage_bytes = "2GiB"\n',
    RL + 'max_memory_usage_bytes = "16GiB"\n',
    RL + "max_container_count = 2\n",
    RL + "max_container_count = 99\n",
    SP + 'security_level = "Medium"\n',
    SP + 'compliance_standards = ["SOC2", "ISO27001", "GDPR", "HIPAA", "PCI-DSS"]\naudit_level = "High"\n'
         'audit_hmac_key_env = "CLEANROOM_AUDIT_KEY"\n',
]


@pytest.mark.parametrize("text,key", RISKY, ids=[k for _, k in RISKY])
def test_each_risky_setting_warns_on_its_key(text, key):
    warnings = check_policy(CleanroomConfig.from_toml(text))
    assert [w.key for w in warnings] == [f"cleanroom.{key}"], warnings
    assert warnings[0].message and warnings[0].severity == "warning"


@pytest.mark.parametrize("text", FINE)
def test_inside_the_thresholds_is_quiet(text):
    assert check_policy(CleanroomConfig.from_toml(text)) == []


def test_defaults_are_quiet():
    assert check_policy(CleanroomConfig.default()) == []
