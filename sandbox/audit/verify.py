"""Check an audit log's chain; name the first record that does not fit.

A chain alone cannot tell a complete log from one whose last records were deleted
whole: every prefix of a valid chain is valid. Two things close that gap: the seal
the writer appends on close (a log without one is reported as unsealed), and a head
hash kept elsewhere (``head=``), which must be the hash of a record in the chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import msgspec

from sandbox.audit.chain import FIELDS, GENESIS, RESUME_EVENT, SEAL_EVENT, record_hash, seal_problem

Problem = Literal["", "tampered", "truncated", "unsealed", "unanchored"]


class VerifyResult(msgspec.Struct):
    ok: bool
    records: int  # records whose chain checked out, seals included
    first_bad_seq: int | None = None
    first_bad_line: int | None = None
    reason: str = ""
    problem: Problem = ""
    sealed: bool = False
    head: str | None = None  # hash of the last record that checked out
    anchored_seq: int | None = None  # seq of the record whose hash is the given head
    segments: int = 0  # writer sessions: 1 + the number of audit.resumed records


def _bad(n: int, seq: int, reason: str, problem: Problem, head: str | None) -> VerifyResult:
    return VerifyResult(ok=False, records=n - 1, first_bad_seq=seq, first_bad_line=n, reason=reason,
                        problem=problem, head=head)


def verify_audit_log(path: str | Path, key: bytes | None = None, *, head: str | None = None,
                     allow_unsealed: bool = False) -> VerifyResult:
    """``allow_unsealed`` accepts a log whose writer was killed before it could seal it."""
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    truncated_tail = lines[-1] != b""
    if not truncated_tail:
        lines = lines[:-1]
    prev, last_event, segments, anchored = GENESIS, None, 1 if lines else 0, None
    head = head.lower() if head else None
    for n, raw in enumerate(lines, start=1):
        expected_seq = n - 1
        last_hash = prev if n > 1 else None
        try:
            rec = json.loads(raw)
            fields_ok = isinstance(rec, dict) and FIELDS <= rec.keys()
        except (ValueError, UnicodeDecodeError):
            rec, fields_ok = None, False
        if not fields_ok:
            if n == len(lines) and truncated_tail:
                return _bad(n, expected_seq, "truncated: the last record is incomplete (the writer was killed "
                                             "mid-record?)", "truncated", last_hash)
            return _bad(n, expected_seq, "not a valid audit record", "tampered", last_hash)
        if rec["seq"] != expected_seq:
            kind = "deleted, inserted or reordered record" if isinstance(rec["seq"], int) else "bad sequence number"
            return _bad(n, expected_seq, f"{kind}: expected seq {expected_seq}, found {rec['seq']}", "tampered",
                        last_hash)
        if rec["prev"] != prev:
            return _bad(n, expected_seq, "chain broken: prev does not match the previous record's hash", "tampered",
                        last_hash)
        if record_hash(rec, key) != rec["hash"]:
            reason = "hash mismatch: the record was edited" + (" (or the key is wrong)" if key else "")
            return _bad(n, expected_seq, reason, "tampered", last_hash)
        if last_event == SEAL_EVENT and rec["event"] != RESUME_EVENT:
            return _bad(n, expected_seq, f"record after the seal at seq {expected_seq - 1} that does not resume "
                                         f"the log (event {rec['event']!r})", "tampered", last_hash)
        if rec["event"] == SEAL_EVENT and (why := seal_problem(rec, bool(key))):
            return _bad(n, expected_seq, f"seal does not match the chain: {why}", "tampered", last_hash)
        if n == len(lines) and truncated_tail:
            return VerifyResult(ok=False, records=n, first_bad_seq=expected_seq, first_bad_line=n,
                                reason="truncated: the file does not end with a newline", problem="truncated",
                                head=rec["hash"])
        segments += rec["event"] == RESUME_EVENT
        if head is not None and rec["hash"] == head:
            anchored = expected_seq
        prev, last_event = rec["hash"], rec["event"]
    count = len(lines)
    result = VerifyResult(ok=True, records=count, sealed=last_event == SEAL_EVENT,
                          head=prev if count else None, anchored_seq=anchored, segments=segments)
    if head is not None and anchored is None:
        result.ok, result.problem = False, "unanchored"
        result.reason = (f"the anchored head {head[:16]}… is the hash of no record in this log: the log was cut "
                         "before that record, or rewritten")
    elif not result.sealed:
        result.problem = "unsealed"
        result.reason = (f"unsealed: the writer stopped at record {count - 1}" if count
                         else "unsealed: the log is empty (the writer never wrote a record)")
        result.ok = allow_unsealed
    return result
