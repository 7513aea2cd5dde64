"""Check an audit log's chain; name the first record that does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from sandbox.audit.log import GENESIS, record_hash


class VerifyResult(msgspec.Struct):
    ok: bool
    records: int
    first_bad_seq: int | None = None
    first_bad_line: int | None = None
    reason: str = ""


def verify_audit_log(path: str | Path, key: bytes | None = None) -> VerifyResult:
    """An empty file is a log with no records yet (how a new log looks): ok, 0."""
    data = Path(path).read_bytes()
    if not data:
        return VerifyResult(ok=True, records=0)
    lines = data.split(b"\n")
    truncated_tail = lines[-1] != b""
    if not truncated_tail:
        lines = lines[:-1]
    prev = GENESIS
    for n, raw in enumerate(lines, start=1):
        expected_seq = n - 1
        last = n == len(lines)
        try:
            rec = json.loads(raw)
            fields_ok = isinstance(rec, dict) and {"seq", "ts", "event", "data", "prev", "hash"} <= rec.keys()
        except (ValueError, UnicodeDecodeError):
            rec, fields_ok = None, False
        if not fields_ok:
            reason = ("truncated: the last record is incomplete (the writer was killed mid-record?)"
                      if last and truncated_tail else "not a valid audit record")
            return VerifyResult(ok=False, records=n - 1, first_bad_seq=expected_seq, first_bad_line=n, reason=reason)
        if rec["seq"] != expected_seq:
            kind = "deleted, inserted or reordered record" if isinstance(rec["seq"], int) else "bad sequence number"
            return VerifyResult(ok=False, records=n - 1, first_bad_seq=expected_seq, first_bad_line=n,
                                reason=f"{kind}: expected seq {expected_seq}, found {rec['seq']}")
        if rec["prev"] != prev:
            return VerifyResult(ok=False, records=n - 1, first_bad_seq=expected_seq, first_bad_line=n,
                                reason="chain broken: prev does not match the previous record's hash")
        if record_hash(rec, key) != rec["hash"]:
            reason = "hash mismatch: the record was edited" + (" (or the key is wrong)" if key else "")
            return VerifyResult(ok=False, records=n - 1, first_bad_seq=expected_seq, first_bad_line=n, reason=reason)
        if last and truncated_tail:
            return VerifyResult(ok=False, records=n, first_bad_seq=expected_seq, first_bad_line=n,
                                reason="truncated: the file does not end with a newline")
        prev = rec["hash"]
    return VerifyResult(ok=True, records=len(lines))
