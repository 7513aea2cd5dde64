"""What observability costs: the same sandboxes with monitoring (samples every 0.25 s,
memory tracking, profiling, alerting) and tracing (spans to a JSON Lines file) on,
against an environment with all of it off, interleaved in one run. Target: ≤ 5 % added.
"""

from __future__ import annotations

import os
import statistics
import time

from sandbox import CleanroomConfig, CleanroomEnvironment

IMAGE = "localhost/cleanroom/busybox:latest"
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "15"))
ON = """
[cleanroom]
enable_tracing = true
enable_monitoring = true
[cleanroom.performance_monitoring]
metrics_interval = 0.25
enable_memory_tracking = true
enable_profiling = true
"""
WORKLOADS = {"/bin/true": ["/bin/true"], "1 s of work": ["/bin/sh", "-c", "timeout 1 sh -c 'while :; do :; done'; true"]}  # not PID 1: init ignores SIGTERM


def test_observability_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEANROOM_TRACE_DIR", str(tmp_path / "traces"))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    print(f"\nobservability cost, {ROUNDS} interleaved rounds each (medians):")
    with CleanroomEnvironment(CleanroomConfig.from_toml(ON), audit_dir=tmp_path) as on, \
            CleanroomEnvironment(CleanroomConfig.default(), audit_dir=tmp_path) as off:
        on.start_metrics_server()
        for label, cmd in WORKLOADS.items():
            on.run(IMAGE, cmd)
            off.run(IMAGE, cmd)
            with_o, without_o = [], []
            for _ in range(ROUNDS):
                t = time.perf_counter()
                r = on.run(IMAGE, cmd)
                with_o.append(time.perf_counter() - t)
                assert r.phases  # really observed
                t = time.perf_counter()
                off.run(IMAGE, cmd)
                without_o.append(time.perf_counter() - t)
            w, b = statistics.median(with_o) * 1000, statistics.median(without_o) * 1000
            print(f"  {label:14s} on {w:7.1f} ms · off {b:7.1f} ms · ratio {w / b:.3f}x · "
                  f"added {(w / b - 1) * 100:+5.1f} % (target ≤ 5 %)")
