"""OpenTelemetry spans of an environment: environment → test → sandbox/service → the
engine's phases (create, init, confine, start, run, wait, remove).

Each test is a trace of its own (its span links to the environment's), so a test's
spans are found by one trace id; containers made outside any test hang under the
environment's span. Spans carry figures and names, never output text. They go over
OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT when it is set, else to a JSON Lines file.
The provider is the environment's own: a global one the application set is left alone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Span, Status, StatusCode

from sandbox.observe.stages import StageRecord

Attributes = dict[str, str | int | float | bool]


def default_trace_dir() -> Path:
    explicit = os.environ.get("CLEANROOM_TRACE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cleanroom" / "traces"


class JsonLinesExporter(SpanExporter):
    """One finished span per line, in the SDK's own JSON form."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


class Tracing:
    def __init__(self, env_id: str, attributes: Attributes, redact: Callable[[str], str],
                 path: Path | None = None) -> None:
        self._redact = redact
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            exporter: SpanExporter = OTLPSpanExporter()  # reads the endpoint (and headers) from the environment
            self.destination = "otlp"
        else:
            self.path = path or default_trace_dir() / f"{env_id}.jsonl"
            exporter = JsonLinesExporter(self.path)
            self.destination = str(self.path)
        self.provider = TracerProvider(resource=Resource.create({"service.name": "cleanroom",
                                                                 "cleanroom.environment": env_id}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("cleanroom")
        self.env_span = self.tracer.start_span("environment", context=otel_context.Context(),
                                               attributes=self.clean(attributes))

    def clean(self, attributes: dict[str, Any]) -> Attributes:
        """Attributes as OTel takes them, strings redacted, empty values dropped."""
        out: Attributes = {}
        for key, value in attributes.items():
            if value is None:
                continue
            out[key] = self._redact(value) if isinstance(value, str) else value
        return out

    def parent(self) -> otel_context.Context:
        """Where a container's span goes: under the span current here (a test's), else the environment's."""
        if trace.get_current_span().get_span_context().is_valid:
            return otel_context.get_current()
        return trace.set_span_in_context(self.env_span, otel_context.Context())

    @contextmanager
    def test(self, name: str) -> Iterator[Span]:
        """A test's span, current in this thread while the block runs: a new trace, unless
        it runs inside another test's span (then it is a child)."""
        inside = trace.get_current_span().get_span_context().is_valid
        span = self.tracer.start_span("test", context=otel_context.get_current() if inside else otel_context.Context(),
                                      attributes=self.clean({"cleanroom.test": name}),
                                      links=[Link(self.env_span.get_span_context())])
        # Exceptions are not recorded: their messages may carry what a test printed.
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            try:
                yield span
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    def container(self, record: StageRecord, attributes: dict[str, Any]) -> None:
        """A finished container's span and one child per phase, with the times the engine marked."""
        parent = record.context if record.context is not None else self.parent()
        end = record.ended_ns or time.time_ns()
        span = self.tracer.start_span(record.kind, context=parent, start_time=record.started_ns,
                                      attributes=self.clean({"cleanroom.sandbox": record.name,
                                                             "cleanroom.kind": record.kind,
                                                             "cleanroom.image": record.image, **attributes}))
        ctx = trace.set_span_in_context(span, otel_context.Context())
        for phase, t0, t1 in record.phases():
            self.tracer.start_span(phase, context=ctx, start_time=t0).end(end_time=t1)
        if attributes.get("cleanroom.verdict") not in (None, "passed"):
            span.set_status(Status(StatusCode.ERROR, str(attributes["cleanroom.verdict"])))
        span.end(end_time=end)

    def close(self) -> None:
        self.env_span.end()
        self.provider.force_flush(timeout_millis=10_000)
        self.provider.shutdown()
