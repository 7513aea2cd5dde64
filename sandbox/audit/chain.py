"""The hash chain shared by the writer (log.py) and the verifier (verify.py).

A record is a JSON object with ``seq``, ``ts``, ``event``, ``data``, ``prev`` and
``hash``; ``hash`` is SHA-256 (HMAC-SHA256 with a key) over the canonical JSON of
the record without ``hash``. Two events belong to the chain itself:

- ``audit.sealed`` closes a segment: ``data`` = ``{"records": N, "head": H,
  "keyed": bool}`` where N is the number of records before the seal (its own
  ``seq``) and H the hash of the record just before it (its own ``prev``). The
  seal's own hash is the log's head: keep it elsewhere to anchor the chain.
- ``audit.resumed`` opens a new segment in the same file when a writer continues
  a log (after a seal, or after a writer that was killed before sealing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

GENESIS = "0" * 64
SEAL_EVENT = "audit.sealed"
RESUME_EVENT = "audit.resumed"
FIELDS = frozenset({"seq", "ts", "event", "data", "prev", "hash"})


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any], key: bytes | None) -> str:
    data = canonical(record)
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def encode_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def seal_data(seq: int, prev: str, keyed: bool) -> dict[str, Any]:
    return {"records": seq, "head": prev, "keyed": keyed}


def seal_problem(record: dict[str, Any], keyed: bool) -> str | None:
    """Why a seal record does not match the chain it closes, or None when it does."""
    data = record.get("data")
    if not isinstance(data, dict):
        return "the seal carries no data"
    if data.get("records") != record["seq"]:
        return f"the seal counts {data.get('records')!r} records but {record['seq']} precede it"
    if data.get("head") != record["prev"]:
        return "the seal's head is not the hash of the record before it"
    if data.get("keyed") is not keyed:
        how = "with" if keyed else "without"
        return f"the seal says keyed={data.get('keyed')!r} but the log was verified {how} a key"
    return None
