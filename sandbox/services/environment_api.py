"""The environment's service and test API (mixed into CleanroomEnvironment)."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.errors import CleanroomError, TimeoutExceeded


class TestOutcome(msgspec.Struct, kw_only=True):
    """What execute_test returns: the value, how long, the verdict and what happened."""

    __test__ = False
    name: str
    value: Any = None
    duration_seconds: float = 0.0
    duration_ms: float = 0.0
    verdict: str = "passed"  # passed | failed | timeout
    error: str | None = None
    events: list[dict[str, Any]] = msgspec.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


class ServicesMixin:
    _services_lock: threading.Lock
    _services: dict[str, Any]
    _events: collections.deque

    def _init_services(self) -> None:
        self._services_lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._services = {}
        self._owned_services: list[Any] = []  # not singletons: removed when the environment closes
        self._events = collections.deque(maxlen=10_000)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="cleanroom-test")

    def _remember(self, event: str, data: dict[str, Any]) -> None:
        line = f"{time.strftime('%H:%M:%S')} {event} " + " ".join(f"{k}={v}" for k, v in data.items())
        self._events.append({"event": event, "data": data, "line": self.redactor.redact(line)
                             if self.redactor is not None else line})

    # -- containers -------------------------------------------------------------------
    def get_or_create_container(self, name: str, factory: Callable[[], Any]) -> Any:
        """Create once and reuse: a ready, healthy service container named ``name``.

        With ``enable_singleton_containers`` the container is shared by every test,
        xdist worker and later run on this host; otherwise each call makes its own,
        removed when the environment closes.
        """
        self._require_open()
        with self._services_lock:
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            current = self._services.get(name)
            if current is not None and current.is_running():
                self.record_metric("containers.reused", 1)
                current.reused = True
                return current
            if self.config.enable_singleton_containers:
                from sandbox.services.singletons import get_or_create

                container = get_or_create(self, name, factory)
            else:
                container = factory()
                container.start(self, alias=name)
                self._owned_services.append(container)
                try:
                    container.wait_for_ready()
                except BaseException:
                    self._owned_services.remove(container)
                    try:
                        container.stop()
                    except Exception as exc:  # keep the readiness error, not this one
                        from loguru import logger

                        logger.warning("could not remove a failed service (prune removes it)", error=str(exc))
                    raise
                self.record_metric("containers.created", 1)
            self._services[name] = container
            return container

    # -- tests ------------------------------------------------------------------------
    def execute_test(self, name: str, fn: Callable[[], Any], timeout: float | None = None) -> TestOutcome:
        """Run ``fn`` as a named test under the policy's test_execution_timeout.

        Safe to call from many threads at once. A timeout gives verdict "timeout"
        (the function's thread cannot be killed; it is left to finish on its own).
        """
        self._require_open()
        limit = float(timeout if timeout is not None else self.config.test_execution_timeout)
        first_event = len(self._events)
        self._audit("test.started", "Low", test=name)
        started = time.perf_counter()
        future = self._pool.submit(fn)
        try:
            value, verdict, error = future.result(timeout=limit), "passed", None
        except concurrent.futures.TimeoutError:
            value, verdict, error = None, "timeout", str(TimeoutExceeded(f"test {name}", limit))
        except Exception as exc:  # the test's own failure is the outcome, not ours
            value, verdict, error = None, "failed", self.redactor.redact(f"{type(exc).__name__}: {exc}")
        duration = time.perf_counter() - started
        self._audit("test.finished", "Low", test=name, verdict=verdict, duration_seconds=round(duration, 4))
        self.record_metric("test.duration_seconds", duration)
        events = [e for e in list(self._events)[first_event:] if e["data"].get("test") == name]
        return TestOutcome(name=name, value=value, duration_seconds=duration, duration_ms=duration * 1000,
                           verdict=verdict, error=error, events=events)

    # -- what happened ----------------------------------------------------------------
    def get_logs(self) -> list[str]:
        """The environment's event log, redacted, oldest first."""
        return [e["line"] for e in self._events]

    def get_security_events(self) -> list[dict[str, Any]]:
        """Limit breaches, network refusals and redaction counts recorded so far."""
        from sandbox.audit.events import SECURITY_EVENTS

        return [{"event": e["event"], **e["data"]} for e in self._events if e["event"] in SECURITY_EVENTS]

    def _close_services(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for container in reversed(self._owned_services):
            try:
                container.stop()
            except Exception as exc:  # keep going: the rest must still be removed
                from loguru import logger

                logger.warning("service removal failed", error=str(exc))
        self._owned_services.clear()


__all__ = ["ServicesMixin", "TestOutcome", "CleanroomError"]
