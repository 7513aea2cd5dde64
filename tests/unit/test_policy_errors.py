"""Bad policies: each is a PolicyError naming file, key path, line and what is allowed."""

from __future__ import annotations

import pytest

from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig

# (case, toml, key path, line or None, text that must appear in "allowed")
CASES = [
    ("unknown key", "[cleanroom]\nsingleton = true\n", "cleanroom.singleton", 2, "enable_singleton_containers"),
    ("unknown nested key", "[cleanroom.resource_limits]\nmax_cpu = 5\n",
     "cleanroom.resource_limits.max_cpu", 2, "max_cpu_usage_percent"),
    ("wrong type", '[cleanroom]\nenable_tracing = "yes"\n', "cleanroom.enable_tracing", 2, "true or false"),
    ("negative size", "[cleanroom.resource_limits]\nmax_memory_usage_bytes = -1\n",
     "cleanroom.resource_limits.max_memory_usage_bytes", 2, ">= 1"),
    ("bad size string", '[cleanroom.resource_limits]\nmax_memory_usage_bytes = "lots"\n',
     "cleanroom.resource_limits.max_memory_usage_bytes", 2, "8GiB"),
    ("percent over 100", "[cleanroom.resource_limits]\nmax_cpu_usage_percent = 150.0\n",
     "cleanroom.resource_limits.max_cpu_usage_percent", 2, "<= 100"),
    ("port out of range", "[cleanroom.security_policy]\nallowed_ports = [5432, 70000]\n",
     "cleanroom.security_policy.allowed_ports[1]", 2, "<= 65535"),
    ("port zero", "[cleanroom.security_policy]\nallowed_ports = [0]\n",
     "cleanroom.security_policy.allowed_ports[0]", 2, ">= 1"),
    ("invalid CIDR", '[cleanroom.security_policy]\nblocked_addresses = ["10.0.0.0/8", "10.0.0.0/99"]\n',
     "cleanroom.security_policy.blocked_addresses[1]", 2, "10.0.0.0/8"),
    ("invalid regex", '[cleanroom.security_policy]\nredaction_patterns = ["ok", "(unclosed"]\n',
     "cleanroom.security_policy.redaction_patterns[1]", 2, "regular expressions"),
    ("unknown security level", '[cleanroom.security_policy]\nsecurity_level = "Ultra"\n',
     "cleanroom.security_policy.security_level", 2, "Maximum"),
    ("unknown audit level", '[cleanroom.security_policy]\naudit_level = "Everything"\n',
     "cleanroom.security_policy.audit_level", 2, "Minimal"),
    ("unknown capability", '[cleanroom.security_policy]\nallowed_capabilities = ["CAP_FLY"]\n',
     "cleanroom.security_policy.allowed_capabilities[0]", 2, "CHOWN"),
    ("typo'd overlay table", "[cleanroom.resource_limit]\nmax_cpu_usage_percent = 50.0\n",
     "cleanroom.resource_limit.max_cpu_usage_percent", 2, "resource_limits"),
    ("bad key in unselected overlay", "[cleanroom]\n\n[cleanroom.prod]\ntest_execution_timeout = -3\n",
     "cleanroom.prod.test_execution_timeout", 4, ">"),
    ("swap below memory", '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "256MiB"\nmemory_swap_bytes = "128MiB"\n',
     "cleanroom.resource_limits.sandbox.memory_swap_bytes", 3, ">= resource_limits.sandbox.memory_bytes"),
    ("unknown top-level table", "[other]\nx = 1\n", "other", 1, "[cleanroom]"),
    ("bad duration", '[cleanroom]\ncontainer_startup_timeout = "soon"\n',
     "cleanroom.container_startup_timeout", 2, "30s"),
    ("origin field is not a key", '[cleanroom]\nsource_file = "x"\n', "cleanroom.source_file", 2, "test_execution_timeout"),
]


@pytest.mark.parametrize("case,text,key,line,allowed", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_file_key_line_and_allowed(case, text, key, line, allowed):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(text, file="team/cleanroom.toml")
    err = info.value
    msg = str(err)
    assert err.file == "team/cleanroom.toml" and "team/cleanroom.toml" in msg
    assert err.key == key and key in msg
    assert err.line == line
    assert err.allowed and allowed in err.allowed and allowed in msg


def test_toml_syntax_error_has_a_line():
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml("[cleanroom]\nx = = 1\n", file="p.toml")
    assert info.value.line == 2 and "p.toml:2" in str(info.value)


def test_unknown_overlay_lists_the_available_ones():
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml("[cleanroom.dev]\n[cleanroom.prod]\n", file="p.toml", env="staging")
    assert "staging" in str(info.value) and "dev, prod" in str(info.value)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_file(tmp_path / "nope.toml")
    assert "not found" in str(info.value) and "nope.toml" in str(info.value)
