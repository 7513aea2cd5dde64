"""The environment's recent events in memory, redacted: what get_logs() and
get_security_events() return and what a test outcome lists."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox.audit.events import SECURITY_EVENTS

Redact = Callable[[str], str]


def redact_values(value: Any, redact: Redact) -> Any:
    """Every string inside ``value`` (dicts, lists, tuples) through ``redact``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v, redact) for v in value]
    return value


class RecentEvents:
    """A bounded, thread-safe memory of events; data is redacted on the way in."""

    def __init__(self, redact: Redact, maxlen: int = 10_000) -> None:
        self._redact = redact
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._count = 0

    def remember(self, event: str, data: dict[str, Any]) -> None:
        data = redact_values(data, self._redact)
        line = f"{time.strftime('%H:%M:%S')} {event} " + " ".join(f"{k}={v}" for k, v in data.items())
        with self._lock:
            self._events.append({"event": event, "data": data, "line": line})
            self._count += 1

    @property
    def count(self) -> int:
        """Events remembered so far (also those the bound has since dropped)."""
        return self._count

    def since(self, count: int) -> list[dict[str, Any]]:
        """The events remembered after the first ``count``."""
        with self._lock:
            events = list(self._events)
            dropped = self._count - len(events)
        return events[max(0, count - dropped):]

    def lines(self) -> list[str]:
        with self._lock:
            return [e["line"] for e in self._events]

    def security(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"event": e["event"], **e["data"]} for e in self._events if e["event"] in SECURITY_EVENTS]
