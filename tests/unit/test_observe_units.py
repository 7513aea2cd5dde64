"""Observability pieces without Podman: the runner's stage marks (through the fake API),
alerts, the sampler, endpoints' binding rules, webhook retries, the HTML report."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from loguru import logger
from test_engine_runner import launcher_for, make, pending_cleanups

from sandbox.cli.main import cli
from sandbox.engine.launcher import ServiceSpec
from sandbox.engine.results import UsageSample
from sandbox.errors import CleanroomError, ContainerError
from sandbox.observe.alerts import AlertBook
from sandbox.observe.http import check_bind, parse_address
from sandbox.observe.hub import Observability
from sandbox.observe.report_html import render
from sandbox.observe.run_report import write_report
from sandbox.observe.sampler import UsageSampler
from sandbox.observe.sinks import Dispatcher, WebhookSink
from sandbox.observe.stages import StageBook
from sandbox.policy import CleanroomConfig


class Marks:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def stage(self, sandbox: str, stage: str) -> None:
        self.log.append(f"stage.{stage}")


def test_the_runner_marks_each_stage_where_it_begins():
    runner, fake, log, _, _ = make()
    runner.observer = Marks(log)
    runner.run(runner.request("img", ["/bin/echo", "hi"]))
    runner.drain()
    seq = [e for e in log if e.startswith("stage.") or e in ("create", "init", "confine.after_init", "attach", "start",
                                                             "remove", "confine.release")]
    # A finished run's removal is handed to the background: its life, as observed, ends there.
    assert seq == ["stage.create", "create", "stage.init", "init", "stage.confine", "confine.after_init",
                   "stage.start", "attach", "start", "stage.run", "stage.wait", "stage.remove", "stage.done",
                   "remove", "confine.release"]


def test_a_service_is_marked_through_its_life_and_removal():
    runner, fake, log, _, _ = make()
    runner.observer = Marks(log)
    service = launcher_for(runner, fake).start(ServiceSpec(image="img", command=["/bin/serve"]), alias="db")
    assert [e for e in log if e.startswith("stage.")] == ["stage.create", "stage.init", "stage.confine",
                                                          "stage.start", "stage.run"]
    service.remove()
    assert [e for e in log if e.startswith("stage.")][-2:] == ["stage.remove", "stage.done"]
    assert pending_cleanups() == []


def test_a_failed_init_still_ends_with_done():
    runner, fake, log, _, _ = make()
    runner.observer = Marks(log)
    fake.fail["init"] = ContainerError("init failed")
    with pytest.raises(ContainerError):
        runner.run(runner.request("img", ["/bin/true"]))
    assert [e for e in log if e.startswith("stage.")] == ["stage.create", "stage.init", "stage.remove", "stage.done"]


def test_stage_records_time_each_phase_and_the_startup():
    book = StageBook()
    for stage in ("create", "init", "confine", "start", "run", "wait", "remove"):
        book.mark("a", stage)
        time.sleep(0.01)
    record = book.mark("a", "done")
    assert record is not None and record.done
    assert list(record.seconds()) == ["create", "init", "confine", "start", "run", "wait", "remove"]
    assert all(v >= 0.009 for v in record.seconds().values())
    assert 0.035 < record.startup_seconds() < 0.5
    assert book.mark("unknown", "run") is None  # made before anyone watched: ignored
    assert book.take("a") is record and book.take("a") is None


def thresholds(**kw):
    base = dict(max_cpu_usage_percent=50.0, max_memory_usage_bytes=100, max_test_execution_time=1.0,
                max_container_startup_time=1.0)
    return SimpleNamespace(**{**base, **kw})


def sample(mem: int, cpu: float | None = None) -> UsageSample:
    return UsageSample(t=time.time(), memory_bytes=mem, cpu_percent=cpu, pids=1)


def test_an_alert_fires_once_per_crossing_and_resolves_when_the_value_drops_back():
    heard = []
    book = AlertBook(thresholds(), heard.append, ncpu=4)
    for mem in (50, 150, 200, 180, 90, 80, 300):
        book.on_sample("sb", sample(mem))
    assert [(a.state, a.value) for a in heard] == [("firing", 150), ("resolved", 90), ("firing", 300)]
    book.on_gone("sb")
    assert heard[-1].state == "resolved" and "removed" in heard[-1].message
    assert book.firing() == []


def test_cpu_is_judged_as_a_share_of_the_whole_host():
    heard = []
    book = AlertBook(thresholds(max_cpu_usage_percent=50.0), heard.append, ncpu=4)
    book.on_sample("sb", sample(1, cpu=180.0))  # 1.8 cores of 4: 45 % of the host
    assert heard == []
    book.on_sample("sb", sample(1, cpu=220.0))
    assert heard[0].threshold == "max_cpu_usage_percent" and heard[0].value == 55.0


def test_the_sampler_computes_cpu_between_readings_and_hands_series_over_once():
    cpu_ns = [0]
    handle = SimpleNamespace(name="sb")

    def source():
        cpu_ns[0] += 50_000_000  # 50 ms of CPU per reading
        return [(handle, {"memory": 1000, "peak_memory": 2000, "cpu_ns": cpu_ns[0], "pids": 3})]

    heard = []
    sampler = UsageSampler(source, 0.1, keep_series=True)
    sampler.listen(lambda name, s: heard.append(name))
    for _ in range(3):
        sampler.tick()
        time.sleep(0.1)
    series = sampler.finish("sb")
    assert [s.cpu_percent is None for s in series.samples] == [True, False, False]
    assert all(20 < s.cpu_percent < 60 for s in series.samples[1:])  # ~50 ms per ~100 ms
    assert series.peak_memory_bytes == 2000 and series.peak_pids == 3 and heard == ["sb"] * 3
    sampler.tick()  # a late reading of a finished container is dropped
    assert sampler.take("sb") is series and sampler.take("sb") is None
    sampler.begin("sb")
    sampler.tick()
    assert sampler.series("sb").count == 1  # the name was reused by a new container


def test_series_are_kept_only_with_memory_tracking():
    sampler = UsageSampler(lambda: [(SimpleNamespace(name="x"), {"memory": 1})], 0.1, keep_series=False)
    sampler.tick()
    assert sampler.series("x").count == 1 and sampler.series("x").samples == []


def test_addresses_and_binding_rules():
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0) and parse_address("[::1]:9090") == ("::1", 9090)
    with pytest.raises(CleanroomError, match="host:port"):
        parse_address("9090")
    check_bind("127.0.0.1", False, "x")
    check_bind("localhost", False, "x")
    with pytest.raises(CleanroomError, match="allow_remote"):
        check_bind("0.0.0.0", False, "the metrics server")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    logger.enable("sandbox")
    try:
        check_bind("0.0.0.0", True, "the metrics server")
    finally:
        logger.remove(sink)
        logger.disable("sandbox")  # as the package leaves it: later tests see the library's default
    assert any("beyond loopback" in line for line in lines)


class _Hook:
    def __init__(self, status: int) -> None:
        self.hits = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.hits += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status,attempts", [(200, 1), (503, 3), (400, 1)])
def test_webhook_retries_are_bounded(status, attempts):
    hook = _Hook(status)
    try:
        WebhookSink(hook.url, retries=2, backoff=0.01)({"state": "firing"})
    finally:
        hook.close()
    assert hook.hits == attempts


def test_a_webhook_needs_an_http_url_and_logs_no_query():
    with pytest.raises(CleanroomError, match="http"):
        WebhookSink("file:///etc/passwd")
    assert "token" not in WebhookSink("http://127.0.0.1:1/x?token=abc").where


def test_putting_an_alert_never_waits_for_a_slow_sink():
    delivered = []
    dispatcher = Dispatcher([lambda p: (time.sleep(0.3), delivered.append(p))])
    t = time.perf_counter()
    for i in range(5):
        dispatcher.put({"n": i})
    assert time.perf_counter() - t < 0.1
    dispatcher.close(timeout=5)
    assert [p["n"] for p in delivered] == [0, 1, 2, 3, 4]


def report_data(name: str = "cleanroom-sandbox-1") -> dict:
    now = time.time()
    series = [[now + i * 0.2, (i + 1) << 20, None if i == 0 else 10.0 * i, 1] for i in range(5)]
    sb = {"name": name, "verdict": "failed", "started": now, "ended": now + 1, "peak_memory_bytes": 5 << 20,
          "timeseries": series, "breaches": [{"limit": "memory", "limit_value": 1, "observed": 2, "detail": "OOM"}]}
    return {"tests": [{"nodeid": "t.py::test_<b>", "outcome": "failed", "duration": 1.0, "sandboxes": [sb],
                       "redactions": {"password": 2}, "trace_id": "ab" * 16}],
            "totals": {"tests": 1, "failed": 1, "redactions": {"password": 2}, "audit_verified": True},
            "environment": {"id": "env-1", "alerts": [], "services": [
                {"name": "db", "kind": "service", "started": now, "ended": None, "timeseries": series}]}}


def test_the_html_report_escapes_names_and_fetches_nothing():
    page = render(report_data('x"><script>alert(1)</script>'))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "test_&lt;b&gt;" in page
    assert "http://" not in page and "https://" not in page and "default-src 'none'" in page
    assert page.count('class="bar ') == 2 and 'data-timeline-bars="2"' in page  # the sandbox and the service
    assert page.count('class="chart plot"') == 2 and "OOM" in page


def test_the_trace_id_column_is_shown_only_when_tests_were_traced():
    data = report_data()
    for t in data["tests"]:
        t.pop("trace_id", None)
    assert "trace id" not in render(data)
    data["tests"][0]["trace_id"] = "ab" * 16
    page = render(data)
    assert "trace id" in page and "ab" * 16 in page


def test_the_report_is_json_or_html_by_its_suffix(tmp_path):
    data = report_data()
    assert json.loads(write_report(tmp_path / "r.json", data).read_text()) == data
    assert write_report(tmp_path / "r.html", data).read_text().startswith("<!DOCTYPE html>")


def test_report_render_cli(tmp_path):
    src = tmp_path / "r.json"
    src.write_text(json.dumps(report_data()))
    result = CliRunner().invoke(cli, ["report", "render", str(src)])
    assert result.exit_code == 0 and (tmp_path / "r.html").exists()
    (tmp_path / "bad.json").write_text("{}")
    bad = CliRunner().invoke(cli, ["report", "render", str(tmp_path / "bad.json")])
    assert bad.exit_code != 0 and "not a run report" in bad.output


def test_monitoring_without_cgroups_is_refused_with_the_fix():
    hub = Observability("env-x", CleanroomConfig.default(), redact=str, audit=lambda *a, **k: None,
                        custom=dict)
    hub.open(SimpleNamespace(), [], lambda: True)
    with pytest.raises(CleanroomError, match="setup-host.sh"):
        hub.enable_monitoring()
