"""The observability methods of CleanroomEnvironment (names from the reference guide's
monitoring chapter, in Python idiom). They delegate to the environment's hub."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sandbox.observe.hub import Observability, TestScope
from sandbox.observe.sinks import Sink


class ObservabilityMethods:
    _observe: Observability

    def _require_open(self) -> Any:  # provided by the environment
        raise NotImplementedError

    def enable_monitoring(self) -> None:
        """Sample every sandbox and service at performance_monitoring.metrics_interval
        (from their cgroup counters); ``enable_monitoring = true`` does this at open."""
        self._require_open()
        self._observe.enable_monitoring()

    def start_health_check_server(self, addr: str = "127.0.0.1:0", *, allow_remote: bool = False) -> str:
        """Serve /healthz (200 while the environment is open and its engine answers, else 503).
        Returns the bound "host:port"; it stops when the environment closes. An address beyond
        loopback needs ``allow_remote=True`` and is logged."""
        self._require_open()
        return self._observe.serve("health", addr, allow_remote)

    def start_metrics_server(self, addr: str = "127.0.0.1:0", *, allow_remote: bool = False) -> str:
        """Serve /metrics: this environment's Prometheus series (turns monitoring on). Returns
        the bound "host:port"; it stops when the environment closes."""
        self._require_open()
        return self._observe.serve("metrics", addr, allow_remote)

    def start_alerting(self, sinks: Sequence[str | Sink] = ()) -> None:
        """Check performance_monitoring.thresholds on every sample and at each test's end.
        An alert becomes an event (get_alerts, get_security_events), an audit record, a metric
        and a log line; each sink (a webhook URL, or a callable taking the alert as a dict) gets
        it too, from a background thread with bounded retries."""
        self._require_open()
        self._observe.start_alerting(sinks)

    def enable_tracing(self, path: str | Path | None = None) -> str:
        """OpenTelemetry spans for tests, sandboxes, services and the engine's phases, over
        OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else to a JSON Lines file (``path``,
        or one under $XDG_STATE_HOME/cleanroom/traces). Returns where they go."""
        self._require_open()
        return self._observe.enable_tracing(path)

    def get_alerts(self) -> list[dict[str, Any]]:
        """Every alert fired or resolved so far, oldest first (redacted)."""
        return self._observe.get_alerts()

    @contextmanager
    def observe_test(self, name: str) -> Iterator[TestScope]:
        """Mark a block as the test ``name``: its containers' spans go under the test's own
        trace (``scope.trace_id``), and test-time thresholds are checked when it ends."""
        with self._observe.test(name) as scope:
            yield scope

    def get_timeline(self) -> list[dict[str, Any]]:
        """Every container this environment made: name, kind, image, start and end (Unix time),
        seconds per engine phase, and its samples when memory tracking is on."""
        return self._observe.timeline()
