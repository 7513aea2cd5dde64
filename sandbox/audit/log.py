"""A tamper-evident audit trail: JSON Lines, each record chained to the previous.

Each record carries ``seq``, ``ts``, ``event``, ``data``, ``prev`` (the previous
record's hash) and ``hash``: SHA-256 (or HMAC-SHA256 with a key) over the record's
canonical JSON without ``hash`` (see chain.py). Editing, deleting, inserting or
reordering a record breaks the chain; with a key, a forger cannot recompute it either.
``close()`` appends a seal (record count, head hash), so a log whose last records were
deleted whole no longer verifies as complete; ``head`` is the hash to keep elsewhere.

Resuming: a writer that opens an existing log continues its chain only if it verifies,
and first appends an ``audit.resumed`` record. A sealed log is finished, not frozen: the
new writer opens a new segment after the seal in the same file (one chain, so a head
kept from the earlier run still anchors it), and seals that segment on its own close.

A sink that cannot be written fails closed: opening it, or any write, raises
``AuditError`` and the log refuses every later record, so no work runs unaudited.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.audit.chain import GENESIS, RESUME_EVENT, SEAL_EVENT, encode_line, record_hash, seal_data
from sandbox.audit.recent import redact_values
from sandbox.audit.verify import verify_audit_log
from sandbox.errors import AuditError, PolicyError
from sandbox.policy.model import LEVELS

_FIX = "make the directory writable for this user and free disk space, or set audit_log_dir (CLEANROOM_AUDIT_DIR)"


def level_at_least(level: str, minimum: str) -> bool:
    return LEVELS.index(level) >= LEVELS.index(minimum)




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
        self._failed: AuditError | None = None
        self._sealed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            resumed = self._resume()
            self._fh = open(self.path, "a", encoding="utf-8")
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise AuditError(str(self.path), f"cannot be opened for writing ({exc.strerror or exc})", _FIX) from None
        if resumed is not None:
            with self._lock:
                self._append(RESUME_EVENT, resumed, sync=True)

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

    @property
    def head(self) -> str | None:
        """Hash of the last record written (the seal's, once closed); None before any record."""
        return None if self._prev == GENESIS else self._prev

    @property
    def records(self) -> int:
        return self._seq

    @property
    def sealed(self) -> bool:
        return self._sealed

    def _resume(self) -> dict[str, Any] | None:
        """Continue an existing chain only if it verifies; never extend a broken one.

        Returns the data of the ``audit.resumed`` record to write, or None for a new log.
        """
        self._seq, self._prev = 0, GENESIS
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        result = verify_audit_log(self.path, key=self._key, allow_unsealed=True)
        if not result.ok:
            raise AuditError(str(self.path), f"refusing to append to a log that does not verify: {result.reason}",
                             "keep the file as evidence and write to a new path (a new environment id)")
        self._seq, self._prev = result.records, result.head or GENESIS
        return {"after": "seal" if result.sealed else "unsealed", "previous_records": result.records}

    def _append(self, event: str, data: dict[str, Any], *, sync: bool = False) -> dict[str, Any]:
        """Write one record; the caller holds the lock. A failed write poisons the log."""
        if self._failed is not None:
            failed = self._failed
            raise AuditError(failed.path, failed.problem, failed.fix)
        rec = {
            "seq": self._seq,
            "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "event": event,
            "data": data,
            "prev": self._prev,
        }
        rec["hash"] = record_hash(rec, self._key)
        try:
            self._fh.write(encode_line(rec))
            self._fh.flush()
            self._unsynced += 1
            if sync or self._unsynced >= self._fsync_every:
                os.fsync(self._fh.fileno())
                self._unsynced = 0
        except OSError as exc:
            self._failed = AuditError(str(self.path), f"cannot be written ({exc.strerror or exc}) at record "
                                      f"{self._seq}", _FIX)
            try:
                self._fh.close()
            except OSError:
                pass  # the handle is gone either way; the first error is the one reported
            raise self._failed from None
        self._seq += 1
        self._prev = rec["hash"]
        return rec

    def record(self, event: str, min_level: str = "Minimal", **data: Any) -> dict[str, Any] | None:
        """Append one record if the log's level asks for it. Raises AuditError if it cannot be written."""
        if not level_at_least(self.level, min_level):
            return None
        data = redact_values(data, self._redact)
        with self._lock:
            if self._failed is None and (self._sealed or self._fh.closed):
                return None
            return self._append(event, data)

    def close(self) -> None:
        """Seal and close. A log that already failed is closed without a seal (it verifies as unsealed)."""
        with self._lock:
            if self._failed is not None or self._fh.closed:
                return
            self._append(SEAL_EVENT, seal_data(self._seq, self._prev, bool(self._key)), sync=True)
            self._sealed = True
            self._fh.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
