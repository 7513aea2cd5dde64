"""One environment's observability: the engine's stage marks, the usage sampler, threshold
alerts and their sinks, Prometheus series, health and metrics endpoints, and tracing.

The environment hands it the runner (it becomes the runner's StageObserver), its
cgroup confiner (samples are read through it) and every event it records; what
the hub learns goes back out as events, audit records, metrics, log lines, spans
and the results' time series and phase timings.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from sandbox.confine import CgroupConfiner
from sandbox.engine.results import RunResult
from sandbox.errors import CleanroomError
from sandbox.observe.alerts import Alert, AlertBook
from sandbox.observe.http import Endpoint, Response, metrics_route, serve
from sandbox.observe.metrics import EnvironmentMetrics
from sandbox.observe.sampler import Series, UsageSampler
from sandbox.observe.sinks import Dispatcher, Sink, as_sink
from sandbox.observe.stages import StageBook

_RUNNING_STAGES = ("start", "run", "wait")


class TestScope:
    """One test as observed: its trace id (with tracing on) and its duration once over."""

    __test__ = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.trace_id: str | None = None
        self.duration_seconds: float | None = None
        self.verdict: str | None = None
        self._span: Any = None

    def wrap(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """``fn`` run with this test's span current, in whatever thread calls it."""
        ctx = contextvars.copy_context()
        return lambda: ctx.run(fn)


class Observability:
    def __init__(self, env_id: str, config: Any, *, redact: Callable[[str], str], audit: Callable[..., None],
                 custom: Callable[[], dict[str, dict[str, float]]]) -> None:
        self.env_id = env_id
        self.config = config
        self._redact = redact
        self._audit = audit
        pm = config.performance_monitoring
        self.monitoring_wanted = bool(config.enable_monitoring or pm.enable_monitoring)
        self.track_memory = bool(pm.enable_memory_tracking)
        self.profile = bool(pm.enable_profiling)
        self.stages = StageBook()
        self.sampler: UsageSampler | None = None
        self.alerts: AlertBook | None = None
        self.dispatcher: Dispatcher | None = None
        self.tracing: Any = None  # sandbox.observe.tracing.Tracing, loaded only when tracing is on
        self.endpoints: list[Endpoint] = []
        self.metrics = EnvironmentMetrics(env_id, running=self.running, series=self._series, peaks=self._peaks,
                                          custom=custom)
        self._source: Callable[[], list[tuple[Any, dict[str, int]]]] | None = None
        self._ping: Callable[[], bool] = lambda: False
        self._opened_at = time.time()
        self._open = False

    # -- lifecycle (the environment calls these) --------------------------------------------
    def open(self, runner: Any, confiners: Sequence[Any], ping: Callable[[], bool]) -> None:
        runner.observer = self
        self._source = next((c.live_usage for c in confiners if isinstance(c, CgroupConfiner)), None)
        self._ping = ping
        self._open = True
        if self.monitoring_wanted:
            self.enable_monitoring()
            self.start_alerting(())
        elif self.track_memory:
            self._sampler()
        if self.config.enable_tracing:
            self.enable_tracing()

    def close(self) -> None:
        self._open = False
        for endpoint in self.endpoints:
            endpoint.close()
        self.endpoints = []
        if self.sampler is not None:
            self.sampler.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.tracing is not None:
            self.tracing.close()

    # -- switches -------------------------------------------------------------------------------
    def _sampler(self) -> UsageSampler:
        if self.sampler is None:
            if self._source is None:
                raise CleanroomError("monitoring reads each sandbox's cgroup counters, and this environment "
                                     "confines none (no delegated cgroup subtree, or confine=False); run "
                                     "scripts/setup-host.sh as root, or leave monitoring off")
            interval = float(self.config.performance_monitoring.metrics_interval)
            self.sampler = UsageSampler(self._source, interval, keep_series=self.track_memory)
            self.sampler.start()
        return self.sampler

    def enable_monitoring(self) -> None:
        self._sampler()
        logger.info("monitoring on", environment=self.env_id, interval=self.sampler.interval)

    def start_alerting(self, sinks: Sequence[str | Sink]) -> None:
        extra = [as_sink(s) for s in sinks]
        sampler = self._sampler()
        if self.alerts is None:
            self.alerts = AlertBook(self.config.performance_monitoring.thresholds, self._emit)
            sampler.listen(self.alerts.on_sample)
        if extra:
            if self.dispatcher is None:
                self.dispatcher = Dispatcher(extra)
            else:
                self.dispatcher.sinks.extend(extra)

    def enable_tracing(self, path: str | Path | None = None) -> str:
        if self.tracing is None:
            from sandbox.observe.tracing import Tracing  # optional: OpenTelemetry loads only when tracing is on

            self.tracing = Tracing(self.env_id, {"cleanroom.environment": self.env_id,
                                                 "cleanroom.policy_digest": self.config.digest(),
                                                 "cleanroom.policy_file": self.config.source_file},
                                   self._redact, Path(path) if path else None)
        return self.tracing.destination

    def serve(self, what: str, addr: str, allow_remote: bool) -> str:
        if what == "metrics":
            self._sampler()  # the peaks it shows come from the samples
            routes = {"/metrics": metrics_route(self.metrics.registry)}
        else:
            routes = {"/healthz": self._health, "/health": self._health}
        endpoint = serve(addr, routes, allow_remote=allow_remote, what=f"the {what} server of {self.env_id}")
        self.endpoints.append(endpoint)
        logger.info(f"{what} server listening", environment=self.env_id, address=endpoint.address)
        return endpoint.address

    def _health(self) -> Response:
        try:
            engine = self._open and self._ping()
        except Exception:
            engine = False
        body = {"ok": engine, "environment": self.env_id, "open": self._open, "engine": engine,
                "uptime_seconds": round(time.time() - self._opened_at, 1),
                "sandboxes_running": len(self.running()),
                "alerts_firing": len(self.alerts.firing()) if self.alerts else 0}
        return 200 if engine else 503, "application/json", json.dumps(body).encode()

    # -- what the engine tells (StageObserver) and what the environment records ----------------
    def stage(self, sandbox: str, stage: str) -> None:
        try:
            context = self.tracing.parent() if stage == "create" and self.tracing is not None else None
            if stage == "create" and self.sampler is not None:
                self.sampler.begin(sandbox)
            record = self.stages.mark(sandbox, stage, context)
            if record is None:
                return
            if stage == "run" and self.alerts is not None:
                startup = record.startup_seconds()
                if startup is not None:
                    self.alerts.on_startup(sandbox, startup)
            if stage == "done":
                series = self.sampler.finish(sandbox) if self.sampler is not None else None
                if self.alerts is not None:
                    self.alerts.on_gone(sandbox)
                if record.kind == "service" and self.tracing is not None:
                    self.tracing.container(record, _series_attributes(series))
        except Exception as exc:  # an observer never breaks a sandbox's life
            logger.warning("stage observer failed", sandbox=sandbox, stage=stage, error=str(exc))

    def event(self, event: str, data: dict[str, Any]) -> None:
        try:
            if event == "sandbox.created":
                self.stages.describe(str(data.get("sandbox")), data.get("kind"), data.get("image"))
            elif event == "singleton.reused":  # made by another process: on the timeline from now on
                self.stages.adopted(str(data.get("sandbox")))
            self.metrics.event(event, data)
        except Exception as exc:
            logger.warning("event observer failed", event=event, error=str(exc))

    def run(self, name: str, call: Callable[[], RunResult]) -> RunResult:
        """Run a sandbox; its result gets its series and phases, its span goes out."""
        try:
            result = call()
        except CleanroomError as exc:
            self._finished(name, getattr(exc, "result", None))
            raise
        self._finished(name, result)
        return result

    def _finished(self, name: str, result: RunResult | None) -> None:
        # A warm pool's member runs under its own name, not the one the run was asked with.
        name = result.sandbox if result is not None else name
        record = self.stages.take(name)
        series = self.sampler.take(name) if self.sampler is not None else None
        if result is not None:
            if self.track_memory and series is not None:
                result.timeseries = list(series.samples)
            if self.profile and record is not None:
                result.phases = record.seconds()
        if self.tracing is not None and record is not None:
            self.tracing.container(record, {**_series_attributes(series), **_result_attributes(result)})

    @contextmanager
    def test(self, name: str) -> Iterator[TestScope]:
        scope = TestScope(name)
        started = time.perf_counter()
        with self.tracing.test(name) if self.tracing is not None else nullcontext() as span:
            if span is not None:
                scope.trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                yield scope
            finally:
                scope.duration_seconds = time.perf_counter() - started
                if span is not None and scope.verdict:
                    span.set_attribute("cleanroom.verdict", scope.verdict)
                if self.alerts is not None:
                    self.alerts.on_test_end(name, scope.duration_seconds)

    # -- alerts ----------------------------------------------------------------------------------
    def _emit(self, alert: Alert) -> None:
        data = msgspec.to_builtins(alert)
        data["message"] = self._redact(alert.message)
        data["subject"] = self._redact(alert.subject)
        event = "alert.fired" if alert.state == "firing" else "alert.resolved"
        fields = {k: v for k, v in data.items() if k != "state"}
        self._audit(event, "Medium", **fields)
        (logger.warning if alert.state == "firing" else logger.info)("alert " + alert.state, **fields)
        if self.dispatcher is not None:
            self.dispatcher.put({"environment": self.env_id, **data})

    def get_alerts(self) -> list[dict[str, Any]]:
        if self.alerts is None:
            return []
        out = []
        for alert in list(self.alerts.history):
            data = msgspec.to_builtins(alert)
            data["message"], data["subject"] = self._redact(alert.message), self._redact(alert.subject)
            out.append(data)
        return out

    # -- views -----------------------------------------------------------------------------------
    def running(self) -> list[tuple[str, str]]:
        return [(r.name, r.kind) for r in self.stages.open_records() if r.marks and r.marks[-1][0] in _RUNNING_STAGES]

    def _series(self, name: str) -> Series | None:
        return self.sampler.series(name) if self.sampler is not None else None

    def _peaks(self) -> tuple[int, float]:
        return (self.sampler.peak_memory_bytes, self.sampler.peak_cpu_percent) if self.sampler else (0, 0.0)

    def timeline(self) -> list[dict[str, Any]]:
        """Every container this environment made, with its times (the report's timeline)."""
        out = []
        for record in self.stages.records():
            entry = record.as_dict()
            entry["name"], entry["image"] = self._redact(record.name), self._redact(record.image or "")
            series = self._series(record.name)
            if series is not None and self.track_memory:
                entry["timeseries"] = msgspec.to_builtins(series.samples)
            out.append(entry)
        return out


def _series_attributes(series: Series | None) -> dict[str, Any]:
    if series is None or not series.count:
        return {}
    return {"cleanroom.peak_memory_bytes": series.peak_memory_bytes,
            "cleanroom.peak_cpu_percent": series.peak_cpu_percent, "cleanroom.samples": series.count}


def _result_attributes(result: RunResult | None) -> dict[str, Any]:
    if result is None:
        return {"cleanroom.verdict": "error"}
    attrs: dict[str, Any] = {"cleanroom.exit_code": result.exit_code, "cleanroom.verdict": result.verdict,
                             "cleanroom.duration_seconds": round(result.duration_seconds, 6),
                             "cleanroom.peak_memory_bytes": result.usage.peak_memory_bytes,
                             "cleanroom.cpu_seconds": result.usage.cpu_seconds,
                             "cleanroom.redactions": sum(result.redactions.values())}
    for rule, n in result.redactions.items():
        attrs[f"cleanroom.redactions.{rule}"] = n
    for breach in result.breaches:
        attrs[f"cleanroom.breach.{breach.limit}"] = True
    return attrs
