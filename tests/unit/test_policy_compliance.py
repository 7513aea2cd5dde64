"""compliance_standards are control profiles: names are checked at load, controls where
the policy is enforced or reviewed (an environment opening, `policy check`, both through
the loader's ``controls`` pass); enable_process_isolation off is refused at High and above."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.environment import CleanroomEnvironment
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig, check_policy
from sandbox.policy.compliance import CONTROLS, STANDARDS, controls_snapshot, evaluate, require_controls
from sandbox.policy.loader import policy_errors

REPO = Path(__file__).resolve().parents[2]
SP = "[cleanroom.security_policy]\n"
KEYED = 'audit_level = "High"\naudit_hmac_key_env = "CLEANROOM_AUDIT_KEY"\n'

# One setting each that breaks exactly one control (on top of a keyed High trail).
BREAKS = {
    "audit.enabled": "enable_audit_logging = false\n",
    "audit.level": 'audit_level = "Medium"\n',
    "audit.keyed": None,  # leave audit_hmac_key_env out
    "redaction.enabled": "enable_data_redaction = false\n",
    "redaction.builtin": "enable_builtin_redaction_rules = false\nredaction_patterns = ['x=\\\\S+']\n",
    "network.isolated": "enable_network_isolation = false\n",
    "isolation.level": 'security_level = "Medium"\n',
    "isolation.process": 'security_level = "Medium"\nenable_process_isolation = false\n',
    "isolation.filesystem": "enable_filesystem_isolation = false\n",
}


def policy(standards: list[str], extra: str = "", keyed: bool = True) -> str:
    names = ", ".join(f'"{s}"' for s in standards)
    base = 'audit_hmac_key_env = "CLEANROOM_AUDIT_KEY"\n' if keyed else ""
    # Later keys win in our text: the breaking line comes after the defaults it changes.
    lines = {}
    for line in (f'audit_level = "High"\n{base}{extra}').splitlines():
        lines[line.split("=")[0].strip()] = line
    return SP + f"compliance_standards = [{names}]\n" + "\n".join(lines.values()) + "\n"


def checked(text: str, file: str = "<string>") -> CleanroomConfig:
    """Load with the controls pass, as `policy check` does; the first error raised."""
    cfg, errors = policy_errors(text, file=file, into=CleanroomConfig, controls=True)
    if errors:
        errors[0].errors = errors
        raise errors[0]
    return cfg


def test_every_control_of_the_table_is_used_and_every_standard_is_named():
    used = {c for controls in STANDARDS.values() for c in controls}
    assert used == set(CONTROLS)
    assert set(STANDARDS) == {"SOC2", "ISO27001", "GDPR", "HIPAA", "PCI-DSS"}


@pytest.mark.parametrize("standard", list(STANDARDS))
def test_each_standard_loads_when_all_its_controls_are_met(standard):
    cfg = checked(policy([standard]))
    require_controls(cfg)
    assert all(evaluate([standard], controls_snapshot(cfg))[standard].values())
    assert check_policy(cfg) == []


@pytest.mark.parametrize("standard,control", [(s, c) for s, cs in STANDARDS.items() for c in cs])
def test_each_missing_control_is_refused_naming_it_and_its_key(standard, control):
    breaking = BREAKS[control]
    text = policy([standard], keyed=False) if breaking is None else policy([standard], breaking)
    with pytest.raises(PolicyError) as info:
        checked(text, file="c.toml")
    err = info.value
    assert err.key == "cleanroom.security_policy.compliance_standards" and err.line == 2
    assert f"- {control} (required by {standard})" in str(err)
    assert CONTROLS[control].key.split(".")[-1] in str(err)  # the key that would satisfy it
    # Process isolation can only be off below High, which also breaks isolation.level.
    extra = control == "isolation.process" and "isolation.level" in STANDARDS[standard]
    assert f"{2 if extra else 1} control(s)" in str(err), str(err)


def test_soc2_without_an_hmac_key_is_refused_with_the_control_named():
    with pytest.raises(PolicyError) as info:
        checked(SP + 'compliance_standards = ["SOC2"]\naudit_level = "High"\n')
    assert "audit.keyed" in str(info.value) and "audit_hmac_key_env" in str(info.value)


def test_every_unmet_control_is_listed_in_one_error():
    text = SP + 'compliance_standards = ["PCI-DSS"]\nenable_data_redaction = false\nsecurity_level = "Low"\n'
    with pytest.raises(PolicyError) as info:
        checked(text)
    listed = [line.split()[1] for line in str(info.value).splitlines()[1:]]
    assert listed == ["audit.level", "audit.keyed", "redaction.enabled", "isolation.level",
                      "isolation.filesystem"]
    assert len(info.value.errors) == 1


def test_a_control_is_named_once_with_every_standard_needing_it():
    with pytest.raises(PolicyError) as info:
        checked(policy(["SOC2", "HIPAA", "GDPR"], keyed=False))
    assert "- audit.keyed (required by SOC2, HIPAA)" in str(info.value)


@pytest.mark.parametrize("name,suggested", [("SOC 2", "SOC2"), ("pci dss", "PCI-DSS"), ("ISO 27001", "ISO27001"),
                                            ("HIPPA", "HIPAA"), ("NIST-800-53", None)])
def test_unknown_standard_is_an_error_with_did_you_mean(name, suggested):
    text = SP + f'compliance_standards = ["GDPR",\n  "{name}"]\n' + KEYED
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(text)
    err = info.value
    assert err.key == "cleanroom.security_policy.compliance_standards[1]" and err.line == 3
    assert "SOC2, ISO27001, GDPR, HIPAA, PCI-DSS" in err.allowed
    assert (f"did you mean {suggested!r}" in str(err)) if suggested else "did you mean" not in str(err)


def test_names_are_case_insensitive():
    cfg = CleanroomConfig.from_toml(policy(["soc2", "pci-dss"]))
    assert controls_snapshot(cfg)["compliance_standards"] == ["SOC2", "PCI-DSS"]


def test_an_overlay_that_breaks_a_control_is_refused_under_its_own_name():
    text = policy(["SOC2"]) + "[cleanroom.dev.security_policy]\nenable_network_isolation = false\n"
    with pytest.raises(PolicyError) as info:
        checked(text)
    assert info.value.key == "cleanroom.dev.security_policy.compliance_standards"
    assert "network.isolated" in str(info.value)


def test_the_shipped_compliance_policy_meets_all_five():
    cfg = CleanroomConfig.from_file(REPO / "policies" / "compliance.toml")
    results = evaluate(cfg.security_policy.compliance_standards, controls_snapshot(cfg))
    assert set(results) == set(STANDARDS) and all(all(r.values()) for r in results.values())


def test_snapshot_holds_no_key_value_only_whether_one_is_named(monkeypatch):
    monkeypatch.setenv("CLEANROOM_AUDIT_KEY", "s3cr3t-key-value")
    snap = controls_snapshot(CleanroomConfig.from_toml(policy(["SOC2"])))
    assert snap["audit_hmac_key_env"] is True and "s3cr3t" not in repr(snap)


# -- enable_process_isolation ------------------------------------------------------
@pytest.mark.parametrize("level", ["High", "Maximum"])
def test_process_isolation_off_is_refused_at_high_and_above(level):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(SP + f'security_level = "{level}"\nenable_process_isolation = false\n')
    err = info.value
    assert err.key == "cleanroom.security_policy.enable_process_isolation" and err.line == 3
    assert f"security_level {level}" in str(err)


def test_process_isolation_off_at_the_default_level_is_refused_too():
    with pytest.raises(PolicyError):
        CleanroomConfig.from_toml(SP + "enable_process_isolation = false\n")


@pytest.mark.parametrize("level", ["Minimal", "Low", "Medium"])
def test_process_isolation_off_below_high_loads_with_a_warning(level):
    cfg = CleanroomConfig.from_toml(SP + f'security_level = "{level}"\nenable_process_isolation = false\n')
    warned = [w for w in check_policy(cfg) if w.key.endswith("enable_process_isolation")]
    assert len(warned) == 1 and "PID namespace" in warned[0].message


def test_parsing_checks_names_but_an_environment_refuses_unmet_controls_before_making_anything(tmp_path):
    # The reference guide's audit example names SOC2 without an HMAC key: it loads as it is ...
    cfg = CleanroomConfig.from_toml(SP + 'compliance_standards = ["SOC2"]\naudit_level = "High"\n', file="g.toml")
    # ... and nothing runs under it: the environment refuses before connecting or writing.
    env = CleanroomEnvironment(cfg, url="unix:///nonexistent/podman.sock", audit_dir=tmp_path / "audit")
    with pytest.raises(PolicyError) as info:
        env.open()
    assert "audit.keyed" in str(info.value) and "audit_hmac_key_env" in str(info.value)
    assert info.value.key == "cleanroom.security_policy.compliance_standards" and info.value.file == "g.toml"
    assert not (tmp_path / "audit").exists()
