"""`policy check`: a warning for each risky key of the guide's Avoid examples."""

from __future__ import annotations

import json

from click.testing import CliRunner

from guide_blocks import blocks, split_avoid
from sandbox.cli.main import cli
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


def test_cli_check_warns_and_exits_zero(tmp_path):
    f = tmp_path / "avoid.toml"
    f.write_text(next(t for t in AVOID if "security_policy" in t))
    r = CliRunner().invoke(cli, ["policy", "check", "--policy", str(f)])
    assert r.exit_code == 0, r.output
    assert "warning: cleanroom.security_policy.enable_data_redaction" in r.output
    assert "policy OK" in r.output


def test_cli_check_error_exits_two_without_traceback(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[cleanroom.resource_limits]\nmax_cpu_usage_percent = 101\n")
    r = CliRunner().invoke(cli, ["policy", "check", "--policy", str(f)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "bad.toml:2" in r.output and "max_cpu_usage_percent" in r.output


def test_cli_check_json(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[cleanroom.security_policy]\nenable_audit_logging = false\n")
    r = CliRunner().invoke(cli, ["policy", "check", "--policy", str(f), "--json"])
    data = json.loads(r.output)
    assert [w["key"] for w in data["warnings"]] == ["cleanroom.security_policy.enable_audit_logging"]


def test_cli_schema_is_json_with_the_sections():
    r = CliRunner().invoke(cli, ["policy", "schema"])
    assert r.exit_code == 0
    schema = json.loads(r.output)
    table = schema["properties"]["cleanroom"]
    for key in ("resource_limits", "security_policy", "performance_monitoring", "test_execution_timeout"):
        assert key in table["properties"]
    assert "source_file" not in table["properties"]
    assert table["additionalProperties"] == {"$ref": "#/$defs/CleanroomConfig"}  # overlays
