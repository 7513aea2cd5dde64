"""Observability on real Podman: metrics and health endpoints, threshold alerts to a
webhook, OpenTelemetry spans to an OTLP/HTTP receiver, time series and phase timings."""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from podman_helpers import BUSYBOX
from receivers import Receiver

from sandbox import CleanroomConfig, CleanroomEnvironment
from sandbox.errors import CleanroomError

PHASES = {"create", "init", "confine", "start", "run", "wait", "remove"}


def policy(extra: str = "", interval: float = 0.2) -> CleanroomConfig:
    return CleanroomConfig.from_toml(f"""
[cleanroom.performance_monitoring]
metrics_interval = {interval}
{extra}
""")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_endpoint_shows_a_running_sandbox_and_its_peaks(tmp_path):
    with CleanroomEnvironment(policy(), audit_dir=tmp_path) as env:
        metrics = env.start_metrics_server()
        health = env.start_health_check_server()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", metrics) and metrics != health
        done = threading.Event()
        results = []
        worker = threading.Thread(target=lambda: (results.append(env.run(
            BUSYBOX, ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=24 2>/dev/null; sleep 3"])),
            done.set()))
        worker.start()
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline and not done.is_set():
            time.sleep(0.3)
            text = get(f"http://{metrics}/metrics")[1]
            peak = re.search(r'cleanroom_sandbox_peak_memory_bytes\{environment="' + env.id
                             + r'",kind="sandbox",sandbox="([^"]+)"\} (\S+)', text)
            if peak and float(peak.group(2)) >= 24 << 20:
                break
        status, body = get(f"http://{health}/healthz")
        worker.join(30)
        assert status == 200 and json.loads(body)["ok"] is True
        assert peak, text  # a live sandbox with its peak memory, while it ran
        name = peak.group(1)
        assert f'cleanroom_sandbox_running{{environment="{env.id}",kind="sandbox",sandbox="{name}"}} 1.0' in text
        assert f'cleanroom_sandboxes_running{{environment="{env.id}",kind="sandbox"}} 1.0' in text
        assert re.search(r'cleanroom_sandbox_peak_cpu_percent\{[^}]*sandbox="' + name + r'"\} \d', text)
        assert results[0].sandbox == name and float(peak.group(2)) >= 24 << 20
        after = get(f"http://{metrics}/metrics")[1]
        assert f'sandbox="{name}"' not in after  # gone from the live series once removed
        assert f'cleanroom_sandboxes_started_total{{environment="{env.id}",kind="sandbox"}} 1.0' in after
        assert f'cleanroom_sandbox_run_seconds_count{{environment="{env.id}"}} 1.0' in after
    with pytest.raises(OSError):  # both servers stopped with the environment
        urllib.request.urlopen(f"http://{metrics}/metrics", timeout=3)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{health}/healthz", timeout=3)


def test_binding_beyond_loopback_needs_an_explicit_argument(tmp_path):
    with CleanroomEnvironment(policy(), audit_dir=tmp_path) as env:
        with pytest.raises(CleanroomError, match="allow_remote"):
            env.start_metrics_server("0.0.0.0:0")
        addr = env.start_health_check_server("0.0.0.0:0", allow_remote=True)
        assert addr.startswith("0.0.0.0:")
        assert get(f"http://127.0.0.1:{addr.split(':')[1]}/healthz")[0] == 200


def test_a_memory_threshold_crossing_fires_one_alert_to_a_webhook_and_resolves(tmp_path):
    cfg = policy('[cleanroom.performance_monitoring.thresholds]\nmax_memory_usage_bytes = "16MiB"\n')
    with Receiver() as hook:
        with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
            env.start_alerting(sinks=[hook.url + "/alerts"])
            result = env.run(BUSYBOX, ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=40 2>/dev/null; "
                                       "sleep 1.5; rm /tmp/fill; sleep 1.5"])
            assert result.ok
            assert hook.wait_for(lambda posts: len(posts) >= 2)
            alerts = env.get_alerts()
            security = [e for e in env.get_security_events() if e["event"].startswith("alert.")]
            audit = env.audit_path
        time.sleep(0.5)  # nothing more may arrive after the resolution
        mine = [json.loads(body) for path, body in hook.posts if path == "/alerts"]
    assert [(a["state"], a["threshold"], a["subject"]) for a in mine] == [
        ("firing", "max_memory_usage_bytes", result.sandbox), ("resolved", "max_memory_usage_bytes", result.sandbox)]
    fired, resolved = mine
    assert fired["value"] > 16 << 20 and fired["limit"] == 16 << 20 and fired["environment"] == env.id
    assert 0 < resolved["value"] <= 16 << 20  # dropped back while the sandbox still ran
    assert [a["state"] for a in alerts] == ["firing", "resolved"]
    assert [e["event"] for e in security] == ["alert.fired", "alert.resolved"]
    records = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    assert records.count("alert.fired") == 1 and records.count("alert.resolved") == 1


def _spans(posts):
    spans = []
    for path, body in posts:
        assert path == "/v1/traces"
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    return spans


def _attrs(span):
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") \
            else v.double_value if v.HasField("double_value") else v.bool_value
    return out


def test_spans_of_a_test_with_two_sandboxes_reach_an_otlp_receiver(tmp_path, monkeypatch):
    cfg = CleanroomConfig.from_toml('[cleanroom]\nenable_tracing = true\n'
                                    '[cleanroom.security_policy]\nredaction_patterns = ["hunter\\\\d"]\n')
    with Receiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url)
        with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
            with env.observe_test("test_two_sandboxes") as scope:
                first = env.run(BUSYBOX, ["/bin/true"])
                second = env.run(BUSYBOX, ["/bin/sh", "-c", "echo the password is hunter2; exit 3"])
            assert "hunter2" not in second.stdout
        assert otlp.wait_for(lambda posts: any(s.name == "environment" for s in _spans(posts)))
        spans = _spans(otlp.posts)
    assert all(b"hunter2" not in body for _, body in otlp.posts)  # output text never goes into spans
    hexid = {id(s): s.trace_id.hex() for s in spans}
    in_test = [s for s in spans if hexid[id(s)] == scope.trace_id]
    test = [s for s in in_test if s.name == "test"]
    assert len(test) == 1 and test[0].parent_span_id == b""  # the root of the test's own trace
    env_span = next(s for s in spans if s.name == "environment")
    assert env_span.trace_id != test[0].trace_id and test[0].links[0].span_id == env_span.span_id
    sandboxes = [s for s in in_test if s.name == "sandbox"]
    assert len(sandboxes) == 2 and all(s.parent_span_id == test[0].span_id for s in sandboxes)
    by_name = {_attrs(s)["cleanroom.sandbox"]: s for s in sandboxes}
    assert set(by_name) == {first.sandbox, second.sandbox}
    for name, sandbox in by_name.items():
        phases = [s for s in in_test if s.parent_span_id == sandbox.span_id]
        assert {p.name for p in phases} == PHASES, name
        assert all(sandbox.start_time_unix_nano <= p.start_time_unix_nano <= p.end_time_unix_nano
                   <= sandbox.end_time_unix_nano for p in phases)
    a = _attrs(by_name[second.sandbox])
    assert a["cleanroom.exit_code"] == 3 and a["cleanroom.verdict"] == "failed"
    assert a["cleanroom.image"] == BUSYBOX and a["cleanroom.redactions"] >= 1
    assert len(a["cleanroom.policy_digest"] if "cleanroom.policy_digest" in a else _attrs(env_span)[
        "cleanroom.policy_digest"]) == 64


def test_a_results_time_series_has_a_sample_per_interval_and_phase_timings(tmp_path):
    interval = 0.25
    cfg = policy("enable_memory_tracking = true\nenable_profiling = true\n", interval)
    with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
        result = env.run(BUSYBOX, ["/bin/sh", "-c", "sleep 2"])
        plain = CleanroomEnvironment(CleanroomConfig.default(), audit_dir=tmp_path)
        with plain:
            untracked = plain.run(BUSYBOX, ["/bin/true"])
    assert set(result.phases) == PHASES and all(v >= 0 for v in result.phases.values())
    assert 1.9 < result.phases["run"] < 3.5
    # Sampled from confinement until removal, on the environment's tick.
    alive = sum(result.phases[p] for p in ("confine", "start", "run", "wait", "remove"))
    expected = alive / interval
    assert expected - 1.5 <= len(result.timeseries) <= expected + 1.5, (len(result.timeseries), expected)
    gaps = [b.t - a.t for a, b in zip(result.timeseries, result.timeseries[1:], strict=False)]
    assert abs(statistics.median(gaps) - interval) < 0.05
    assert all(s.memory_bytes > 0 and s.pids >= 1 for s in result.timeseries)
    assert result.timeseries[0].cpu_percent is None and all(s.cpu_percent is not None for s in result.timeseries[1:])
    assert untracked.timeseries == [] and untracked.phases == {}  # off by default


def test_monitoring_keys_alone_sample_and_alert_on_cpu(tmp_path):
    """performance_monitoring.enable_monitoring = true: no call needed; a busy sandbox crosses
    thresholds.max_cpu_usage_percent (a share of the whole host) once."""
    cfg = policy("enable_monitoring = true\n[cleanroom.performance_monitoring.thresholds]\n"
                 "max_cpu_usage_percent = 5.0\n")
    with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
        busy = env.run(BUSYBOX, ["/bin/sh", "-c", "timeout 2 /bin/sh -c 'while :; do :; done'; sleep 0.8"])
        alerts = env.get_alerts()
        events = [e["event"] for e in env.get_security_events()]
    cpu = [a for a in alerts if a["threshold"] == "max_cpu_usage_percent" and a["subject"] == busy.sandbox]
    assert [a["state"] for a in cpu] == ["firing", "resolved"], alerts
    assert cpu[0]["value"] > 5.0 and "of the host" in cpu[0]["message"]
    assert "alert.fired" in events and "alert.resolved" in events


def test_test_execution_time_threshold_fires_once_and_resolves_at_test_ends(tmp_path):
    cfg = policy("[cleanroom.performance_monitoring.thresholds]\nmax_test_execution_time = 0.3\n")
    with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
        env.start_alerting()
        env.execute_test("slow_one", lambda: time.sleep(0.5))
        env.execute_test("slow_two", lambda: time.sleep(0.5))  # still over: no second alert
        assert [a["state"] for a in env.get_alerts()] == ["firing"]
        env.execute_test("fast", lambda: None)
        alerts = env.get_alerts()
    assert [(a["state"], a["threshold"]) for a in alerts] == [("firing", "max_test_execution_time"),
                                                             ("resolved", "max_test_execution_time")]
    assert "slow_one" in alerts[0]["message"] and alerts[0]["value"] >= 0.5


def test_container_startup_time_threshold_fires_once_per_crossing(tmp_path):
    cfg = policy("[cleanroom.performance_monitoring.thresholds]\nmax_container_startup_time = 0.001\n")
    with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
        env.start_alerting()
        first = env.run(BUSYBOX, ["/bin/true"])
        env.run(BUSYBOX, ["/bin/true"])
        alerts = env.get_alerts()
    startup = [a for a in alerts if a["threshold"] == "max_container_startup_time"]
    assert [a["state"] for a in startup] == ["firing"]  # the second start is still over: no new alert
    assert first.sandbox in startup[0]["message"] and startup[0]["value"] > 0.001


def test_the_cli_mirrors_monitoring_alerting_and_tracing(tmp_path):
    """cleanroom run --monitor/--alert-webhook/--trace do what enable_monitoring,
    start_alerting and enable_tracing do in Python."""
    import os
    import subprocess
    import sys

    from podman_helpers import REPO

    pol = tmp_path / "p.toml"
    pol.write_text('[cleanroom.performance_monitoring]\nmetrics_interval = 0.2\n'
                   '[cleanroom.performance_monitoring.thresholds]\nmax_memory_usage_bytes = "16MiB"\n')
    with Receiver() as hook:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": hook.url, "CLEANROOM_AUDIT_DIR": str(tmp_path / "audit")}
        proc = subprocess.run(
            [sys.executable, "-m", "sandbox.cli", "run", "--policy", str(pol), "--alert-webhook", hook.url + "/alerts",
             "--trace", BUSYBOX, "--", "/bin/sh", "-c",
             "dd if=/dev/zero of=/tmp/fill bs=1M count=40 2>/dev/null; sleep 1; rm /tmp/fill; sleep 1; echo done"],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr
        assert hook.wait_for(lambda posts: sum(p == "/alerts" for p, _ in posts) >= 2
                             and any(s.name == "environment" for s in _spans([x for x in posts if x[0] == "/v1/traces"])))
        alerts = [json.loads(body)["state"] for path, body in hook.posts if path == "/alerts"]
        traces = [(path, body) for path, body in hook.posts if path == "/v1/traces"]
    assert alerts == ["firing", "resolved"]
    names = {s.name for s in _spans(traces)}
    assert {"environment", "sandbox"} <= names and PHASES <= names, names
