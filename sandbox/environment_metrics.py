"""Custom metrics an environment records (record_metric) and summarises (get_metrics)."""

from __future__ import annotations

import threading


class Metrics:
    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def record(self, name: str, value: float) -> None:
        with self._lock:
            self._values.setdefault(name, []).append(float(value))

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {name: {"count": len(v), "last": v[-1], "max": max(v), "sum": sum(v)}
                    for name, v in self._values.items()}
