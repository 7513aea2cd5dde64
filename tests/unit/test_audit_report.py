"""`cleanroom audit report`: evidence from a unit-built audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox.audit import AuditLog
from sandbox.audit.report import build_report
from sandbox.cli.main import cli
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig
from sandbox.policy.compliance import controls_snapshot

REPO = Path(__file__).resolve().parents[2]
COMPLIANT = REPO / "policies" / "compliance.toml"
KEY = b"unit-test-audit-key-0123456789"


def write_log(path: Path, cfg: CleanroomConfig, *, key: bytes | None = KEY, carry_controls: bool = True,
              policy_file: str | None = None) -> Path:
    applied = {"digest": cfg.digest()}
    if carry_controls:
        applied["controls"] = controls_snapshot(cfg)
    with AuditLog(path, level="High", key=key) as log:
        log.record("environment.opened", environment="env-unit", policy_file=policy_file, policy_env=None)
        log.record("policy.applied", **applied)
        for n in range(3):
            log.record("sandbox.created", sandbox=f"sb{n}", image="busybox", kind="sandbox")
        log.record("limit.breach", sandbox="sb1", limit="memory", limit_value=64, observed=70)
        log.record("limit.breach", sandbox="sb2", limit="timeout", limit_value=1)
        log.record("redaction.counts", sandbox="sb0", counts={"assignment": 2, "secret:REG": 1})
        log.record("redaction.counts", sandbox="sb2", counts={"assignment": 1})
        log.record("network.refused", sandbox="sb3", reason="port 8080 not allowed")
        log.record("environment.closed", environment="env-unit")
    return path


def test_compliant_keyed_log_is_complete_evidence(tmp_path):
    log = write_log(tmp_path / "a.jsonl", CleanroomConfig.from_file(COMPLIANT))
    ev = build_report(log, ["SOC2"], key=KEY)
    assert ev.complete and ev.gaps == [] and ev.chain_verified and ev.keyed is True
    assert ev.records == 12 and ev.environments == ["env-unit"] and ev.sandboxes == 3  # 11 events + the seal
    assert ev.breaches == {"memory": 1, "timeout": 1}
    assert ev.redactions == {"assignment": 3, "secret:REG": 1} and ev.network_refusals == 1
    assert ev.controls_source == "the audit log's policy.applied record"
    assert [c.id for c in ev.controls["SOC2"]] == ["audit.enabled", "audit.level", "audit.keyed",
                                                  "redaction.enabled", "network.isolated", "isolation.level"]
    assert all(c.met for c in ev.controls["SOC2"])


def test_without_the_key_keying_is_unknown_and_the_evidence_incomplete(tmp_path):
    log = write_log(tmp_path / "a.jsonl", CleanroomConfig.from_file(COMPLIANT))
    ev = build_report(log, ["SOC2"])
    assert not ev.chain_verified and ev.keyed is None and not ev.complete
    assert any("HMAC-keyed" in g for g in ev.gaps)


def test_unkeyed_log_fails_soc2_but_not_gdpr(tmp_path):
    cfg = CleanroomConfig.from_toml('[cleanroom.security_policy]\naudit_level = "High"\n')
    log = write_log(tmp_path / "a.jsonl", cfg, key=None)
    soc2 = build_report(log, ["SOC2"], key=KEY)  # a key given does not make a plain chain keyed
    assert soc2.chain_verified and soc2.keyed is False and not soc2.complete
    assert "controls not met: audit.keyed" in soc2.gaps
    gdpr = build_report(log, ["GDPR"])
    assert gdpr.complete, gdpr.gaps


def test_an_edited_record_breaks_the_evidence(tmp_path):
    log = write_log(tmp_path / "a.jsonl", CleanroomConfig.from_file(COMPLIANT))
    lines = log.read_text().splitlines()
    lines[5] = lines[5].replace('"memory"', '"pids"')
    log.write_text("\n".join(lines) + "\n")
    ev = build_report(log, ["SOC2"], key=KEY)
    assert not ev.chain_verified and "edited" in ev.chain_problem and not ev.complete


def test_controls_from_a_policy_file_only_when_its_digest_matches(tmp_path):
    cfg = CleanroomConfig.from_file(COMPLIANT)
    log = write_log(tmp_path / "a.jsonl", cfg, carry_controls=False, policy_file=str(COMPLIANT))
    named = build_report(log, ["HIPAA"], key=KEY)  # the file the log names
    assert named.complete and named.controls_source.endswith("(digest matches the log)")
    other = tmp_path / "other.toml"
    other.write_text(COMPLIANT.read_text().replace("max_container_count = 10", "max_container_count = 11"))
    changed = build_report(log, ["HIPAA"], key=KEY, policy=other)
    assert changed.controls_source.startswith("unknown") and "digest" in changed.controls_source
    assert all(c.met is None for c in changed.controls["HIPAA"]) and not changed.complete


def test_unknown_standard_is_refused():
    with pytest.raises(PolicyError):
        build_report(REPO / "README.md", ["SOC3"])


def test_cli_text_and_json(tmp_path, monkeypatch):
    log = write_log(tmp_path / "a.jsonl", CleanroomConfig.from_file(COMPLIANT))
    monkeypatch.setenv("UNIT_AUDIT_KEY", KEY.decode())
    r = CliRunner().invoke(cli, ["audit", "report", str(log), "--standard", "SOC2", "--key-env", "UNIT_AUDIT_KEY"])
    assert r.exit_code == 0, r.output
    assert "chain: verified, 12 records, HMAC-keyed" in r.output
    assert "[met  ] SOC2 audit.keyed" in r.output and "evidence: complete" in r.output
    assert "limit breaches: 2 (memory 1, timeout 1)" in r.output
    r = CliRunner().invoke(cli, ["audit", "report", str(log), "--standard", "soc2", "--standard", "GDPR", "--json"])
    data = json.loads(r.output)
    assert r.exit_code == 1 and data["standards"] == ["SOC2", "GDPR"] and data["keyed"] is None
    r = CliRunner().invoke(cli, ["audit", "report", str(log), "--standard", "SOC 2"])
    assert r.exit_code == 2 and "SOC2" in r.stderr
