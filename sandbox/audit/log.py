"""A tamper-evident audit trail: JSON Lines, each record chained to the previous.

Each record carries ``seq``, ``ts``, ``event``, ``data``, ``prev`` (the previous
record's hash) and ``hash``: SHA-256 (or HMAC-SHA256 with a key) over the record's
canonical JSON without ``hash``. Editing, deleting, inserting or reordering a record
breaks the chain; with a key, a forger cannot recompute it either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.errors import PolicyError

LEVELS = ("Minimal", "Low", "Medium", "High", "Maximum")
GENESIS = "0" * 64


def level_at_least(level: str, minimum: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(minimum)


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any], key: bytes | None) -> str:
    data = canonical(record)
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _redact_value(value: Any, redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(v, redact) for v in value]
    return value


class AuditLog:
    """Append-only, thread-safe; fsync per record at High and above, else every 32."""

    def __init__(self, path: str | os.PathLike[str], *, level: str = "Medium", key: bytes | None = None,
                 redactor: Any = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown audit level {level!r}")
        self.path = Path(path)
        self.level = level
        self._key = key
        self._redact = redactor.redact if redactor is not None else (lambda s: s)
        self._lock = threading.Lock()
        self._fsync_every = 1 if level_at_least(level, "High") else 32
        self._unsynced = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._prev = self._resume()
        self._fh = open(self.path, "a", encoding="utf-8")
        os.chmod(self.path, 0o600)

    @classmethod
    def for_policy(cls, security_policy: Any, directory: str | os.PathLike[str], name: str,
                   redactor: Any = None) -> AuditLog:
        key = None
        env_name = getattr(security_policy, "audit_hmac_key_env", None)
        if env_name:
            value = os.environ.get(env_name)
            if not value:
                raise PolicyError(f"the audit HMAC key variable {env_name} is not set",
                                  key="cleanroom.security_policy.audit_hmac_key_env",
                                  allowed="the name of a set, non-empty environment variable")
            key = value.encode()
        return cls(Path(directory) / f"{name}.jsonl", level=getattr(security_policy, "audit_level", "Medium"),
                   key=key, redactor=redactor)

    def _resume(self) -> tuple[int, str]:
        """Continue an existing chain only if it verifies; never extend a broken one."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS
        from sandbox.audit.verify import verify_audit_log

        result = verify_audit_log(self.path, key=self._key)
        if not result.ok:
            raise ValueError(f"refusing to append to {self.path}: {result.reason}")
        last = json.loads(self.path.read_text(encoding="utf-8").splitlines()[-1])
        return last["seq"] + 1, last["hash"]

    def record(self, event: str, min_level: str = "Minimal", **data: Any) -> dict[str, Any] | None:
        if not level_at_least(self.level, min_level):
            return None
        data = _redact_value(data, self._redact)
        with self._lock:
            if self._fh.closed:
                return None
            rec = {
                "seq": self._seq,
                "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "event": event,
                "data": data,
                "prev": self._prev,
            }
            rec["hash"] = record_hash(rec, self._key)
            self._fh.write(json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
            self._fh.flush()
            self._unsynced += 1
            if self._unsynced >= self._fsync_every:
                os.fsync(self._fh.fileno())
                self._unsynced = 0
            self._seq += 1
            self._prev = rec["hash"]
            return rec

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
