"""`cleanroom policy check|schema` through click's CliRunner."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from guide_blocks import blocks

from sandbox.cli.main import cli
from sandbox.cli.policy_cmd import policy_group
from sandbox.policy import CleanroomConfig
from sandbox.policy.effects import NOT_ENFORCED

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


# -- files as arguments, every error, the pre-commit hook ------------------------------
TWO_ERRORS = "[cleanroom]\nenable_tracing = \"yes\"\n[cleanroom.resource_limits]\nmax_cpu = 3\n"


def test_check_takes_files_as_arguments_and_reports_each(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(RISKY)
    bad.write_text(TWO_ERRORS)
    r = invoke("check", str(good), str(bad))
    assert r.exit_code == 2
    assert f"policy OK: {good}" in r.stdout and "enable_audit_logging" in r.stdout
    assert "bad.toml:2: cleanroom.enable_tracing" in r.stderr
    assert "bad.toml:4: cleanroom.resource_limits.max_cpu" in r.stderr  # not only the first error
    assert f"policy INVALID: {bad}, 2 error(s)" in r.stderr


def test_check_of_good_files_exits_zero(tmp_path):
    files = [REPO / "policies" / f"{n}.toml" for n in ("default", "ci", "compliance")]
    r = invoke("check", *map(str, files))
    assert r.exit_code == 0 and r.stdout.count("policy OK") == 3


def test_check_json_lists_every_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TWO_ERRORS)
    r = invoke("check", str(bad), "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 2 and data["ok"] is False
    assert [(e["line"], e["key"]) for e in data["errors"]] == [
        (2, "cleanroom.enable_tracing"), (4, "cleanroom.resource_limits.max_cpu")]


def _unenforced_switch() -> str | None:
    """A key still listed as not enforced whose default is false (set true, it must be reported)."""
    default = CleanroomConfig.default()
    for key in sorted(NOT_ENFORCED):
        node = default
        for part in key.split("."):
            node = getattr(node, part)
        if node is False:
            return key
    return None


def test_check_reports_keys_accepted_but_not_enforced(tmp_path, monkeypatch):
    f = tmp_path / "p.toml"
    f.write_text("[cleanroom]\nenable_coverage_tracking = true\n")
    r = invoke("check", str(f))
    assert r.exit_code == 0 and "not enforced" not in r.stdout  # enforced since issue 12: no note
    key = _unenforced_switch()
    if key is None:
        # Every boolean key is enforced now: a stand-in entry keeps the note itself tested.
        key = "enable_coverage_tracking"
        monkeypatch.setitem(NOT_ENFORCED, key, "a stand-in reason")
    table, _, leaf = key.rpartition(".")
    f.write_text(f"[cleanroom{'.' + table if table else ''}]\n{leaf} = true\n")
    r = invoke("check", str(f))
    assert r.exit_code == 0
    assert f"note: cleanroom.{key}: accepted, not yet enforced" in r.stdout
    assert "1 key(s) accepted but not enforced yet" in r.stdout


def test_pre_commit_hook_runs_its_entry_on_a_good_and_a_bad_file(tmp_path):
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "cleanroom-policy-check")
    assert hook["entry"] == "cleanroom policy check" and hook["language"] == "python"
    pattern = re.compile(hook["files"])
    assert pattern.search("cleanroom.toml") and pattern.search("ci/cleanroom.prod.toml")
    assert pattern.search("policies/strict.toml") and not pattern.search("pyproject.toml")
    good, bad = tmp_path / "cleanroom.toml", tmp_path / "cleanroom.bad.toml"
    good.write_text((REPO / "policies" / "default.toml").read_text())
    bad.write_text(TWO_ERRORS)
    # As pre-commit runs it: the entry, then the matching files; this checkout's code.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ok = subprocess.run([*shlex.split(hook["entry"]), str(good)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and f"policy OK: {good}" in ok.stdout, ok.stderr
    both = subprocess.run([*shlex.split(hook["entry"]), str(good), str(bad)], capture_output=True, text=True, env=env)
    assert both.returncode != 0
    assert "cleanroom.bad.toml:2:" in both.stderr and "cleanroom.bad.toml:4:" in both.stderr


def test_other_commands_show_every_error_of_a_bad_policy_too(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TWO_ERRORS)
    r = CliRunner().invoke(cli, ["run", "--policy", str(bad), "localhost/cleanroom/busybox:latest", "--", "true"])
    assert r.exit_code == 2
    assert "bad.toml:2: cleanroom.enable_tracing" in r.stderr and "bad.toml:4: cleanroom.resource_limits" in r.stderr


def test_check_fails_on_an_unmet_compliance_control(tmp_path):
    f = tmp_path / "soc2.toml"
    f.write_text('[cleanroom.security_policy]\ncompliance_standards = ["SOC2"]\naudit_level = "High"\n')
    r = invoke("check", str(f))
    assert r.exit_code == 2
    assert "audit.keyed" in r.output and "audit_hmac_key_env" in r.output and "soc2.toml:2" in r.output
