"""The audit chain: intact logs verify; every kind of tampering names its first bad record."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sandbox.audit import AuditLog, verify_audit_log
from sandbox.cli.main import cli
from sandbox.errors import AuditError
from sandbox.redact import Redactor
from sandbox.redact.samples import expand

AWS_KEY = expand("AKIA⟨Z16⟩", "tests:audit").text  # made up, drawn from the key format


def make_log(path, n=5, key=None, level="High"):
    with AuditLog(path, level=level, key=key) as log:
        for i in range(n):
            log.record("step", "Minimal", index=i, note=f"record {i}")
    return path


def lines(path):
    return path.read_text().splitlines(keepends=True)


def test_intact_log_verifies(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    r = verify_audit_log(p)
    assert r.ok and r.sealed and r.records == 6  # five records and the seal


def test_edited_record_is_detected(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    ls = lines(p)
    rec = json.loads(ls[2])
    rec["data"]["note"] = "forged"
    ls[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"
    p.write_text("".join(ls))
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 2 and r.first_bad_line == 3 and "edited" in r.reason


def test_deleted_record_is_detected(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    ls = lines(p)
    del ls[1]
    p.write_text("".join(ls))
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 1


def test_inserted_record_is_detected_even_with_a_recomputed_hash(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    ls = lines(p)
    forged = json.loads(ls[1])
    forged["data"]["note"] = "inserted"
    ls.insert(2, json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")
    p.write_text("".join(ls))
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 2


def test_reordered_records_are_detected(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    ls = lines(p)
    ls[1], ls[3] = ls[3], ls[1]
    p.write_text("".join(ls))
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 1


def test_truncated_tail_is_reported_never_accepted(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    data = p.read_bytes()
    p.write_bytes(data[:-30])  # cut mid-record, as a killed writer would
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 5 and "truncated" in r.reason and r.problem == "truncated"


def test_missing_final_newline_is_truncation(tmp_path):
    p = make_log(tmp_path / "a.jsonl")
    p.write_bytes(p.read_bytes()[:-1])
    r = verify_audit_log(p)
    assert not r.ok and "truncated" in r.reason


def test_keyed_log_rejects_a_fully_recomputed_forgery(tmp_path):
    from sandbox.audit.chain import record_hash

    p = make_log(tmp_path / "a.jsonl", key=b"k1")
    assert verify_audit_log(p, key=b"k1").ok
    assert not verify_audit_log(p, key=b"wrong").ok
    # A forger without the key recomputes an unkeyed chain: detected.
    ls = [json.loads(x) for x in lines(p)]
    ls[2]["data"]["note"] = "forged"
    prev = ls[1]["hash"]
    for rec in ls[2:]:
        rec["prev"] = prev
        rec["hash"] = record_hash(rec, None)
        prev = rec["hash"]
    p.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in ls))
    r = verify_audit_log(p, key=b"k1")
    assert not r.ok and r.first_bad_seq == 2


def test_levels_filter_records(tmp_path):
    with AuditLog(tmp_path / "m.jsonl", level="Medium") as log:
        assert log.record("a", "Minimal") is not None
        assert log.record("b", "Medium") is not None
        assert log.record("c", "High") is None
    assert verify_audit_log(tmp_path / "m.jsonl").records == 3  # a, b and the seal


def test_strings_are_redacted_before_hashing(tmp_path):
    p = tmp_path / "r.jsonl"
    with AuditLog(p, redactor=Redactor()) as log:
        log.record("cmd", "Minimal", argv=["x", AWS_KEY], nested={"k": "password=hunter22"})
    text = p.read_text()
    assert AWS_KEY not in text and "hunter22" not in text
    assert verify_audit_log(p).ok


def test_appending_continues_the_chain_and_refuses_a_broken_one(tmp_path):
    p = make_log(tmp_path / "a.jsonl", n=2)
    with AuditLog(p) as log:
        log.record("more", "Minimal")
    # seal, audit.resumed, more, seal
    assert verify_audit_log(p).records == 3 + 3
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(AuditError, match="refusing to append"):
        AuditLog(p)


def test_cli_verify_exit_codes(tmp_path, monkeypatch):
    p = make_log(tmp_path / "a.jsonl")
    r = CliRunner().invoke(cli, ["audit", "verify", str(p)])
    assert r.exit_code == 0 and "6 records" in r.output and "sealed" in r.output
    ls = lines(p)
    del ls[3]
    p.write_text("".join(ls))
    r = CliRunner().invoke(cli, ["audit", "verify", str(p)])
    assert r.exit_code == 1 and "seq 3" in r.output and "line 4" in r.output
    assert CliRunner().invoke(cli, ["audit", "verify", str(tmp_path / "nope")]).exit_code == 2
    assert CliRunner().invoke(cli, ["audit", "verify", str(p), "--key-env", "UNSET_VAR_X"]).exit_code == 2
    keyed = make_log(tmp_path / "k.jsonl", key=b"s3cret")
    monkeypatch.setenv("AUDIT_KEY", "s3cret")
    assert CliRunner().invoke(cli, ["audit", "verify", str(keyed), "--key-env", "AUDIT_KEY"]).exit_code == 0
