"""Threshold alerts: performance_monitoring.thresholds checked on each usage sample and
at each test's end. An alert fires once when its value crosses the threshold and
resolves when the value drops back (or its container is gone)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.engine.results import UsageSample


class Alert(msgspec.Struct, kw_only=True, frozen=True):
    threshold: str  # the key under performance_monitoring.thresholds
    subject: str  # the sandbox or service it is about; "tests" or "startup" for per-run figures
    state: str  # "firing" | "resolved"
    value: float
    limit: float
    at: float  # Unix time
    message: str


_UNITS = {"max_cpu_usage_percent": "% of the host", "max_memory_usage_bytes": " bytes",
          "max_test_execution_time": " s", "max_container_startup_time": " s"}


def _show(threshold: str, value: float) -> str:
    if threshold == "max_memory_usage_bytes":
        return f"{int(value)} bytes ({value / 2**20:.1f} MiB)"
    return f"{value:g}{_UNITS[threshold]}"


class AlertBook:
    """Which alerts are firing; ``emit`` hears every firing and resolving."""

    def __init__(self, thresholds: Any, emit: Callable[[Alert], None], *, ncpu: int | None = None) -> None:
        self._thresholds = thresholds
        self._emit = emit
        self._ncpu = ncpu or os.cpu_count() or 1
        self._firing: dict[tuple[str, str], Alert] = {}
        self._lock = threading.Lock()
        self.history: list[Alert] = []

    def _limit(self, threshold: str) -> float:
        return float(getattr(self._thresholds, threshold))

    def check(self, threshold: str, subject: str, value: float, context: str = "") -> Alert | None:
        limit = self._limit(threshold)
        key = (threshold, subject)
        with self._lock:
            firing = self._firing.get(key)
            if value > limit and firing is None:
                alert = Alert(threshold=threshold, subject=subject, state="firing", value=value, limit=limit,
                              at=time.time(), message=f"{subject}: {context or threshold} {_show(threshold, value)} "
                                                      f"is over {threshold} = {_show(threshold, limit)}")
                self._firing[key] = alert
            elif value <= limit and firing is not None:
                alert = self._resolved(key, value, f"back to {_show(threshold, value)}")
            else:
                return None
            self.history.append(alert)
        self._emit(alert)
        return alert

    def _resolved(self, key: tuple[str, str], value: float, why: str) -> Alert:
        threshold, subject = key
        del self._firing[key]
        return Alert(threshold=threshold, subject=subject, state="resolved", value=value, limit=self._limit(threshold),
                     at=time.time(), message=f"{subject}: {threshold} resolved, {why}")

    # -- what is checked, and when -------------------------------------------------------
    def on_sample(self, name: str, sample: UsageSample) -> None:
        self.check("max_memory_usage_bytes", name, sample.memory_bytes, "memory")
        if sample.cpu_percent is not None:
            # The threshold is a share of the whole host, like resource_limits.max_cpu_usage_percent.
            self.check("max_cpu_usage_percent", name, round(sample.cpu_percent / self._ncpu, 2), "CPU")

    def on_gone(self, name: str) -> None:
        """A container was removed: whatever fired about it is over."""
        with self._lock:
            alerts = [self._resolved(key, 0.0, "the container was removed")
                      for key in list(self._firing) if key[1] == name]
            self.history.extend(alerts)
        for alert in alerts:
            self._emit(alert)

    def on_test_end(self, test: str, seconds: float) -> None:
        self.check("max_test_execution_time", "tests", round(seconds, 3), f"test {test} took")

    def on_startup(self, name: str, seconds: float) -> None:
        self.check("max_container_startup_time", "startup", round(seconds, 3), f"{name} took")

    def firing(self) -> list[Alert]:
        with self._lock:
            return list(self._firing.values())
