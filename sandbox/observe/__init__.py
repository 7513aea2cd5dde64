"""Observability: usage samples, threshold alerts, Prometheus metrics, health, tracing,
time series and phase timings on results, and the HTML run report."""

from sandbox.observe.alerts import Alert
from sandbox.observe.facade import ObservabilityMethods
from sandbox.observe.hub import Observability, TestScope
from sandbox.observe.sinks import WebhookSink

__all__ = ["Alert", "Observability", "ObservabilityMethods", "TestScope", "WebhookSink"]
