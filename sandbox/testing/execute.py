"""execute_test: run a function as a named test, bounded in time, with its verdict
and the events it caused."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
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


# The test the current thread works for (execute_test sets it): sandboxes started under it
# are that test's, and a test that runs out of time has them killed.
RUNNING_TEST: contextvars.ContextVar[str | None] = contextvars.ContextVar("cleanroom_running_test", default=None)


def as_test(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn``, run as test ``name`` (RUNNING_TEST set in whatever context it finally runs
    in: wrap it innermost, inside any other context-switching wrapper)."""

    def call() -> Any:
        RUNNING_TEST.set(name)
        return fn()

    return call


class TestSandboxes:
    """Which sandboxes each running test started, so a timed-out test's can be killed."""

    __test__ = False

    def __init__(self, kill: Callable[[str], None]) -> None:
        self._kill = kill
        self._lock = threading.Lock()
        self._by_test: dict[str, set[str]] = {}

    def started(self, sandbox: str) -> None:
        test = RUNNING_TEST.get()
        if test is not None:
            with self._lock:
                self._by_test.setdefault(test, set()).add(sandbox)

    def ended(self, sandbox: str) -> None:
        test = RUNNING_TEST.get()
        with self._lock:
            names = self._by_test.get(test or "", set())
            names.discard(sandbox)
            if not names:
                self._by_test.pop(test or "", None)

    def kill_all(self, test: str) -> list[str]:
        """Kill the test's sandboxes. One still being created has no container to kill
        yet: it is tried again until its run ends (``ended``) or for 30 s."""
        with self._lock:
            names = sorted(self._by_test.get(test, set()))
        threading.Thread(target=self._keep_killing, args=(test,), name=f"cleanroom-kill-{test}", daemon=True).start()
        return names

    def _keep_killing(self, test: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._lock:
                names = sorted(self._by_test.get(test, set()))
            if not names:
                return
            for name in names:
                self._kill(name)
            time.sleep(0.2)


class TestExecutor:
    """Runs tests on a thread pool, so a test that hangs past its limit does not hang
    the caller (the thread cannot be killed; it is left to finish on its own)."""

    __test__ = False

    def __init__(self, events: RecentEvents, audit: AuditFn, redact: Callable[[str], str],
                 record_metric: Callable[[str, float], None], sandboxes: TestSandboxes) -> None:
        self._sandboxes = sandboxes
        self._events = events
        self._audit = audit
        self._redact = redact
        self._record_metric = record_metric
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="cleanroom-test")

    def run(self, name: str, fn: Callable[[], Any], limit: float) -> TestOutcome:
        first_event = self._events.count
        self._audit("test.started", "Low", test=name)
        started = time.perf_counter()
        future = self._pool.submit(contextvars.copy_context().run, fn)
        try:
            value, verdict, error = future.result(timeout=limit), "passed", None
        except concurrent.futures.TimeoutError:
            killed = self._sandboxes.kill_all(name)  # their runs end, and remove them
            value, verdict, error = None, "timeout", str(TimeoutExceeded(f"test {name}", limit))
            self._audit("limit.breach", "High", test=name, limit="test_time", limit_value=limit, killed=killed)
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
