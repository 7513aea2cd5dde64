"""execute_test: run a function as a named test, bounded in time, with its verdict
and the events it caused."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.audit.recent import RecentEvents
from sandbox.engine.types import AuditFn
from sandbox.errors import TimeoutExceeded


class TestOutcome(msgspec.Struct, kw_only=True):
    """What execute_test returns: the value, how long, the verdict and what happened."""

    __test__ = False
    name: str
    value: Any = None
    duration_seconds: float = 0.0
    verdict: str = "passed"  # passed | failed | timeout
    error: str | None = None
    events: list[dict[str, Any]] = msgspec.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


class TestExecutor:
    """Runs tests on a thread pool, so a test that hangs past its limit does not hang
    the caller (the thread cannot be killed; it is left to finish on its own)."""

    __test__ = False

    def __init__(self, events: RecentEvents, audit: AuditFn, redact: Callable[[str], str],
                 record_metric: Callable[[str, float], None]) -> None:
        self._events = events
        self._audit = audit
        self._redact = redact
        self._record_metric = record_metric
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="cleanroom-test")

    def run(self, name: str, fn: Callable[[], Any], limit: float) -> TestOutcome:
        first_event = self._events.count
        self._audit("test.started", "Low", test=name)
        started = time.perf_counter()
        future = self._pool.submit(fn)
        try:
            value, verdict, error = future.result(timeout=limit), "passed", None
        except concurrent.futures.TimeoutError:
            value, verdict, error = None, "timeout", str(TimeoutExceeded(f"test {name}", limit))
        except Exception as exc:  # the test's own failure is the outcome, not ours
            value, verdict, error = None, "failed", self._redact(f"{type(exc).__name__}: {exc}")
        duration = time.perf_counter() - started
        self._audit("test.finished", "Low", test=name, verdict=verdict, duration_seconds=round(duration, 4))
        self._record_metric("test.duration_seconds", duration)
        events = [e for e in self._events.since(first_event) if e["data"].get("test") == name]
        return TestOutcome(name=name, value=value, duration_seconds=duration, verdict=verdict, error=error,
                           events=events)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
