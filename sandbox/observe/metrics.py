"""An environment's Prometheus series: counted from its own events (the same ones the
audit trail gets) and read from its sampler at scrape time. Every series carries the
environment's id, so several environments can be scraped side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sandbox.observe.sampler import Series

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _Live:
    """Scrape-time view: what runs now, its peaks, and the custom counters of the environment."""

    def __init__(self, env_id: str, running: Callable[[], list[tuple[str, str]]],
                 series: Callable[[str], Series | None], peaks: Callable[[], tuple[int, float]],
                 custom: Callable[[], dict[str, dict[str, float]]]) -> None:
        self._env = env_id
        self._running = running
        self._series = series
        self._peaks = peaks
        self._custom = custom

    def collect(self):
        env = self._env
        running = self._running()
        count = GaugeMetricFamily("cleanroom_sandboxes_running", "sandboxes and services alive now",
                                  labels=["environment", "kind"])
        up = GaugeMetricFamily("cleanroom_sandbox_running", "1 for each sandbox or service alive now",
                               labels=["environment", "sandbox", "kind"])
        mem = GaugeMetricFamily("cleanroom_sandbox_peak_memory_bytes", "peak memory of each live container",
                                labels=["environment", "sandbox", "kind"])
        cpu = GaugeMetricFamily("cleanroom_sandbox_peak_cpu_percent",
                                "peak CPU of each live container (100 = one core)",
                                labels=["environment", "sandbox", "kind"])
        by_kind: dict[str, int] = {"sandbox": 0, "service": 0}
        for name, kind in running:
            by_kind[kind] = by_kind.get(kind, 0) + 1
            up.add_metric([env, name, kind], 1)
            series = self._series(name)
            if series is not None and series.count:
                mem.add_metric([env, name, kind], series.peak_memory_bytes)
                cpu.add_metric([env, name, kind], series.peak_cpu_percent)
        for kind, n in by_kind.items():
            count.add_metric([env, kind], n)
        peak_mem, peak_cpu = self._peaks()
        env_mem = GaugeMetricFamily("cleanroom_environment_peak_memory_bytes",
                                    "highest memory of any one container sampled so far", labels=["environment"])
        env_mem.add_metric([env], peak_mem)
        env_cpu = GaugeMetricFamily("cleanroom_environment_peak_cpu_percent",
                                    "highest CPU of any one container sampled so far (100 = one core)",
                                    labels=["environment"])
        env_cpu.add_metric([env], peak_cpu)
        custom = self._custom()
        reused = CounterMetricFamily("cleanroom_singleton_reuses", "service containers reused instead of created",
                                     labels=["environment"])
        reused.add_metric([env], custom.get("containers.reused", {}).get("sum", 0.0))
        created = CounterMetricFamily("cleanroom_service_containers_created", "service containers created",
                                      labels=["environment"])
        created.add_metric([env], custom.get("containers.created", {}).get("sum", 0.0))
        yield from (count, up, mem, cpu, env_mem, env_cpu, reused, created)


class EnvironmentMetrics:
    def __init__(self, env_id: str, *, running: Callable[[], list[tuple[str, str]]],
                 series: Callable[[str], Series | None], peaks: Callable[[], tuple[int, float]],
                 custom: Callable[[], dict[str, dict[str, float]]]) -> None:
        self.env_id = env_id
        self.registry = CollectorRegistry()
        r = self.registry
        self.started = Counter("cleanroom_sandboxes_started", "sandboxes and services started",
                               ["environment", "kind"], registry=r)
        self.failed = Counter("cleanroom_sandboxes_failed", "sandboxes whose verdict was not passed",
                              ["environment", "verdict"], registry=r)
        self.duration = Histogram("cleanroom_sandbox_run_seconds", "wall time of each sandbox run",
                                  ["environment"], buckets=_DURATION_BUCKETS, registry=r)
        self.breaches = Counter("cleanroom_limit_breaches", "limit breaches by kind", ["environment", "kind"],
                                registry=r)
        self.redactions = Counter("cleanroom_redactions", "values masked, by redaction rule",
                                  ["environment", "rule"], registry=r)
        self.alerts = Counter("cleanroom_alerts", "alerts fired, by threshold", ["environment", "threshold"],
                              registry=r)
        r.register(_Live(env_id, running, series, peaks, custom))

    def event(self, event: str, data: dict[str, Any]) -> None:
        """Count one environment event (already redacted)."""
        env = self.env_id
        if event == "sandbox.started":
            self.started.labels(env, str(data.get("kind", "sandbox"))).inc()
        elif event == "sandbox.verdict":
            self.duration.labels(env).observe(float(data.get("duration_seconds") or 0.0))
            if data.get("verdict") != "passed":
                self.failed.labels(env, str(data.get("verdict"))).inc()
        elif event == "limit.breach":
            self.breaches.labels(env, str(data.get("limit", "unknown"))).inc()
        elif event == "redaction.counts":
            for rule, n in (data.get("counts") or {}).items():
                self.redactions.labels(env, str(rule)).inc(n)
        elif event == "alert.fired":
            self.alerts.labels(env, str(data.get("threshold"))).inc()
