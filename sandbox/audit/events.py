"""The security-relevant part of an audit trail."""

from __future__ import annotations

from typing import Any

import msgspec

SECURITY_EVENTS = ("limit.breach", "network.refused", "redaction.counts", "policy.violation", "alert.fired",
                   "alert.resolved")


class SecurityEvent(msgspec.Struct, frozen=True):
    seq: int
    ts: str
    event: str
    data: dict[str, Any]


def security_events(records: list[dict[str, Any]]) -> list[SecurityEvent]:
    return [SecurityEvent(r["seq"], r["ts"], r["event"], r["data"]) for r in records
            if r.get("event") in SECURITY_EVENTS]
