"""Sealed audit logs: a complete log is told from a cut one, a head kept elsewhere anchors the
chain, a sealed log is resumed in a new segment, and a sink that cannot be written fails closed."""

from __future__ import annotations

import errno
import json
import os

import pytest
from click.testing import CliRunner

from sandbox.audit import AuditLog, verify_audit_log
from sandbox.audit.chain import SEAL_EVENT, encode_line, record_hash
from sandbox.cli.main import cli
from sandbox.errors import AuditError, CleanroomError


def make_log(path, n=5, key=None):
    with AuditLog(path, level="High", key=key) as log:
        for i in range(n):
            log.record("step", "Minimal", index=i)
    return path, log.head


def records(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def write(path, recs):
    path.write_text("".join(encode_line(r) for r in recs))


def reseal(recs, key=None):
    """What a forger does after cutting records: recompute the seal so it matches the cut chain."""
    seal = dict(recs[-1])
    seal["seq"] = len(recs) - 1
    seal["prev"] = recs[-2]["hash"]
    seal["data"] = {"records": seal["seq"], "head": seal["prev"], "keyed": bool(key)}
    seal["hash"] = record_hash(seal, key)
    return recs[:-1] + [seal]


def test_close_writes_a_seal_with_count_and_head(tmp_path):
    p, head = make_log(tmp_path / "a.jsonl", n=3)
    recs = records(p)
    seal = recs[-1]
    assert seal["event"] == SEAL_EVENT
    assert seal["data"] == {"records": 3, "head": recs[2]["hash"], "keyed": False}
    assert head == seal["hash"]  # AuditLog.head after close is the seal's hash
    r = verify_audit_log(p)
    assert r.ok and r.sealed and r.head == head and r.problem == ""


def test_head_follows_each_record(tmp_path):
    log = AuditLog(tmp_path / "h.jsonl")
    assert log.head is None
    rec = log.record("one", "Minimal")
    assert log.head == rec["hash"] and not log.sealed
    log.close()
    assert log.sealed and log.head != rec["hash"]


def test_a_log_without_its_seal_is_reported_unsealed(tmp_path):
    p, _ = make_log(tmp_path / "a.jsonl")
    write(p, records(p)[:-1])  # the seal deleted: what a writer killed before close leaves too
    r = verify_audit_log(p)
    assert not r.ok and r.problem == "unsealed" and not r.sealed
    assert r.reason == "unsealed: the writer stopped at record 4"
    allowed = verify_audit_log(p, allow_unsealed=True)
    assert allowed.ok and allowed.problem == "unsealed" and allowed.records == 5


def test_dropped_trailing_records_of_a_sealed_log_fail(tmp_path):
    p, _ = make_log(tmp_path / "a.jsonl")
    recs = records(p)
    write(p, recs[:-3])  # the last two records and the seal, deleted whole
    r = verify_audit_log(p)
    assert not r.ok and r.reason == "unsealed: the writer stopped at record 2"
    # Deleting the last record but keeping the seal breaks the seal's link instead.
    write(p, recs[:-2] + recs[-1:])
    r = verify_audit_log(p)
    assert not r.ok and r.problem == "tampered" and r.first_bad_seq == 4


@pytest.mark.parametrize("field,value", [("records", 2), ("head", "ab" * 32), ("keyed", True)])
def test_an_edited_seal_is_caught_with_or_without_a_recomputed_hash(tmp_path, field, value):
    p, _ = make_log(tmp_path / "a.jsonl")
    recs = records(p)
    recs[-1]["data"][field] = value
    write(p, recs)
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 5 and "edited" in r.reason
    recs[-1]["hash"] = record_hash(recs[-1], None)
    write(p, recs)
    r = verify_audit_log(p)
    assert not r.ok and r.first_bad_seq == 5 and "seal does not match" in r.reason


def test_a_kept_head_catches_a_cut_and_resealed_log(tmp_path):
    p, head = make_log(tmp_path / "a.jsonl")
    recs = records(p)
    # Without a key anyone can recompute a seal over a cut chain: the log alone then looks complete...
    write(p, reseal(recs[:4] + recs[-1:]))
    assert verify_audit_log(p).ok
    # ...but a head kept elsewhere is the hash of no record any more.
    r = verify_audit_log(p, head=head)
    assert not r.ok and r.problem == "unanchored" and head[:16] in r.reason


def test_a_keyed_seal_cannot_be_recomputed_by_a_forger(tmp_path):
    p, _ = make_log(tmp_path / "k.jsonl", key=b"k1")
    recs = records(p)
    write(p, reseal(recs[:4] + recs[-1:], key=None))
    r = verify_audit_log(p, key=b"k1")
    assert not r.ok and r.first_bad_seq == 4 and "edited" in r.reason


def test_anchor_names_the_record_it_matches(tmp_path):
    p, head = make_log(tmp_path / "a.jsonl", n=2)
    r = verify_audit_log(p, head=head.upper())
    assert r.ok and r.anchored_seq == 2
    mid = records(p)[1]["hash"]
    assert verify_audit_log(p, head=mid).anchored_seq == 1


def test_a_record_after_the_seal_must_resume_the_log(tmp_path):
    p, _ = make_log(tmp_path / "a.jsonl", n=2)
    recs = records(p)
    extra = {"seq": 3, "ts": recs[-1]["ts"], "event": "step", "data": {}, "prev": recs[-1]["hash"]}
    extra["hash"] = record_hash(extra, None)
    write(p, recs + [extra])
    r = verify_audit_log(p, allow_unsealed=True)
    assert not r.ok and r.first_bad_seq == 3 and "after the seal" in r.reason


def test_a_sealed_log_is_resumed_in_a_new_segment_of_one_chain(tmp_path):
    p, first_head = make_log(tmp_path / "a.jsonl", n=2)
    with AuditLog(p) as log:
        log.record("again", "Minimal")
    recs = records(p)
    assert [r["event"] for r in recs] == ["step", "step", SEAL_EVENT, "audit.resumed", "again", SEAL_EVENT]
    assert recs[3]["data"] == {"after": "seal", "previous_records": 3}
    r = verify_audit_log(p, head=first_head)
    assert r.ok and r.sealed and r.segments == 2 and r.anchored_seq == 2
    # Cutting the second segment away leaves a sealed log, but the second run's head catches it.
    write(p, recs[:3])
    assert verify_audit_log(p).ok
    assert verify_audit_log(p, head=log.head).problem == "unanchored"


def test_an_unsealed_log_is_resumed_and_says_so(tmp_path):
    p, _ = make_log(tmp_path / "a.jsonl", n=2)
    write(p, records(p)[:-1])  # a killed writer's log
    with AuditLog(p) as log:
        log.record("again", "Minimal")
    recs = records(p)
    assert recs[2]["event"] == "audit.resumed" and recs[2]["data"] == {"after": "unsealed", "previous_records": 2}
    assert verify_audit_log(p).ok


def test_an_empty_file_is_unsealed(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"")
    r = verify_audit_log(p)
    assert not r.ok and r.problem == "unsealed" and "empty" in r.reason
    assert verify_audit_log(p, allow_unsealed=True).ok


def test_a_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(AuditError) as info:
        AuditLog(blocker / "x.jsonl")
    assert isinstance(info.value, CleanroomError)
    assert str(blocker / "x.jsonl") in str(info.value) and "audit_log_dir" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode; the suite runs as a user")
def test_a_read_only_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(AuditError, match="Permission denied"):
            AuditLog(ro / "x.jsonl")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


class _FullDisk:
    """A file object whose writes fail as on a full disk."""

    closed = False

    def write(self, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass

    def fileno(self):
        raise AssertionError("never reached: the write fails first")

    def close(self):
        self.closed = True


def test_a_full_disk_fails_closed(tmp_path):
    p = tmp_path / "full.jsonl"
    log = AuditLog(p)
    log.record("before", "Minimal")
    log._fh.close()
    log._fh = _FullDisk()
    with pytest.raises(AuditError, match="No space left on device") as info:
        log.record("lost", "Minimal")
    assert "record 1" in str(info.value)
    # Every later record is refused too: nothing goes on unaudited once the sink failed.
    with pytest.raises(AuditError):
        log.record("later", "Minimal")
    log.close()  # no seal can be written; close does not raise, the log reads as unsealed
    r = verify_audit_log(p)
    assert r.problem == "unsealed" and r.records == 1


def test_cli_verify_seal_and_head(tmp_path):
    p, head = make_log(tmp_path / "a.jsonl")
    ok = CliRunner().invoke(cli, ["audit", "verify", str(p), "--head", head])
    assert ok.exit_code == 0 and "anchored at seq 5" in ok.output and f"head {head}" in ok.output
    bad = CliRunner().invoke(cli, ["audit", "verify", str(p), "--head", "0" * 64])
    assert bad.exit_code == 1 and "UNANCHORED" in bad.output
    write(p, records(p)[:-1])
    r = CliRunner().invoke(cli, ["audit", "verify", str(p)])
    assert r.exit_code == 1 and "unsealed: the writer stopped at record 4" in r.output
    assert "--allow-unsealed" in r.output
    r = CliRunner().invoke(cli, ["audit", "verify", str(p), "--allow-unsealed"])
    assert r.exit_code == 0 and "unsealed: the writer stopped at record 4" in r.output
    recs = records(p)
    recs.append(reseal(recs + [dict(recs[-1], event=SEAL_EVENT)])[-1])
    recs[-1]["data"]["records"] = 99
    write(p, recs)
    r = CliRunner().invoke(cli, ["audit", "verify", str(p), "--json"])
    data = json.loads(r.output)
    assert r.exit_code == 1 and data["problem"] == "tampered" and data["first_bad_seq"] == 5
