"""`cleanroom policy check|schema` through click's CliRunner."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from guide_blocks import blocks

from sandbox.cli.main import cli
from sandbox.cli.policy_cmd import policy_group

REPO = Path(__file__).resolve().parents[2]
RISKY = "[cleanroom.security_policy]\nenable_data_redaction = false\nenable_audit_logging = false\n"
OVERLAYS = "[cleanroom]\ntest_execution_timeout = 300\n[cleanroom.dev]\ntest_execution_timeout = 60\n[cleanroom.prod]\n"


def invoke(*args: str):
    return CliRunner().invoke(cli, ["policy", *args])


def test_group_is_exported_under_its_name():
    assert policy_group.name == "policy" and set(policy_group.commands) == {"check", "schema"}


def test_check_prints_each_warning_and_exits_zero(tmp_path):
    f = tmp_path / "risky.toml"
    f.write_text(RISKY)
    r = invoke("check", "--policy", str(f))
    assert r.exit_code == 0, r.output
    assert "warning: cleanroom.security_policy.enable_data_redaction: " in r.output
    assert "warning: cleanroom.security_policy.enable_audit_logging: " in r.output
    assert f"policy OK: {f}" in r.output


@pytest.mark.parametrize("name", ["default", "strict", "ci", "compliance"])
def test_shipped_policies_check_clean(name):
    r = invoke("check", "--policy", str(REPO / "policies" / f"{name}.toml"))
    assert r.exit_code == 0 and "warning" not in r.output and "policy OK" in r.output


def test_check_with_env_names_it(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(OVERLAYS)
    r = invoke("check", "--policy", str(f), "--env", "dev")
    assert r.exit_code == 0 and f"policy OK: {f} (env dev)" in r.output


def test_check_takes_the_env_from_the_variable(tmp_path, monkeypatch):
    f = tmp_path / "p.toml"
    f.write_text(OVERLAYS)
    monkeypatch.setenv("CLEANROOM_ENV", "prod")
    assert "(env prod)" in invoke("check", "--policy", str(f)).output


# (file content, env, text the error must show)
BAD = [
    ("[cleanroom.resource_limits]\nmax_cpu_usage_percent = 101\n", None, "bad.toml:2: cleanroom.resource_limits.max_cpu_usage_percent"),
    ("[cleanroom]\nx = = 1\n", None, "bad.toml:2"),
    ("[cleanroom.security_policy]\nallowed_ports = [1, 2, 99999]\n", None, "allowed_ports[2]"),
    (OVERLAYS, "staging", "dev, prod"),
]


@pytest.mark.parametrize("text,env,shown", BAD)
def test_check_errors_exit_two_on_stderr_without_traceback(tmp_path, text, env, shown):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = invoke("check", "--policy", str(f), *(["--env", env] if env else []))
    assert r.exit_code == 2
    assert shown in r.stderr and "policy OK" not in r.stdout
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)  # a clean exit, not a crash


def test_missing_file_exits_two(tmp_path):
    r = invoke("check", "--policy", str(tmp_path / "nope.toml"))
    assert r.exit_code == 2 and "not found" in r.stderr and "Traceback" not in r.output


def test_check_defaults_to_cleanroom_toml_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLEANROOM_ENV", raising=False)
    Path("cleanroom.toml").write_text(RISKY)
    r = invoke("check")
    assert r.exit_code == 0 and "policy OK: cleanroom.toml" in r.output and "enable_audit_logging" in r.output


def test_check_without_a_file_uses_the_built_in_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLEANROOM_ENV", raising=False)
    r = invoke("check")
    assert r.exit_code == 0 and "policy OK: built-in default" in r.output and "warning" not in r.output


def test_check_json(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[cleanroom.security_policy]\nenable_audit_logging = false\n")
    r = invoke("check", "--policy", str(f), "--json")
    data = json.loads(r.output)
    assert data["file"] == str(f) and data["env"] is None
    assert data["warnings"] == [{"key": "cleanroom.security_policy.enable_audit_logging",
                                 "message": data["warnings"][0]["message"], "severity": "warning"}]


def _schema() -> dict:
    r = invoke("schema")
    assert r.exit_code == 0
    assert r.output.startswith("{\n  ")  # indented, for reading
    return json.loads(r.output)


def test_schema_is_json_with_the_sections():
    table = _schema()["properties"]["cleanroom"]
    for key in ("resource_limits", "security_policy", "performance_monitoring", "test_execution_timeout"):
        assert key in table["properties"]
    assert "source_file" not in table["properties"]
    assert table["additionalProperties"] == {"$ref": "#/$defs/CleanroomConfig"}  # overlays


def _valid_against_schema(doc: dict) -> bool:
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema).is_valid(doc)


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_policies_satisfy_the_schema(path):
    assert _valid_against_schema(tomllib.loads(path.read_text()))


def test_good_guide_blocks_satisfy_the_schema():
    for ident, kind, text in blocks():
        if kind == "good":
            assert _valid_against_schema(tomllib.loads(text)), ident


@pytest.mark.parametrize("doc", [
    {"cleanroom": {"resource_limits": {"max_cpu": 5}}},                 # unknown key
    {"cleanroom": {"resource_limit": {"max_cpu_usage_percent": 5}}},    # typo'd table read as an overlay
    {"cleanroom": {"resource_limits": {"max_memory_usage_bytes": "lots"}}},
    {"cleanroom": {"security_policy": {"security_level": "Ultra"}}},
    {"other": {}},
])
def test_schema_rejects_what_the_loader_rejects(doc):
    assert not _valid_against_schema(doc)
