"""The run report of a real pytest run: JSON with traces, time series, phases, alerts and
a verified audit trail; rendered to HTML by the CLI and checked in headless Chromium
(no script errors, every timeline bar and plot drawn, chart areas not blank)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

from chromium import Chromium
from PIL import Image
from podman_helpers import BUSYBOX, cleanroom_cli

POLICY = """
[cleanroom]
enable_tracing = true
enable_monitoring = true
enable_singleton_containers = false

[cleanroom.security_policy]
redaction_patterns = ["hunter\\\\d+"]

[cleanroom.performance_monitoring]
metrics_interval = 0.2
enable_memory_tracking = true
enable_profiling = true

[cleanroom.performance_monitoring.thresholds]
max_memory_usage_bytes = "16MiB"
"""

SUITE = f'''
BUSYBOX = "{BUSYBOX}"

def test_fills_memory(sandbox):
    r = sandbox(BUSYBOX, ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/f bs=1M count=24 2>/dev/null; sleep 1; "
                          "rm /tmp/f; sleep 0.6"])
    assert r.ok
    r2 = sandbox(BUSYBOX, ["/bin/sh", "-c", "echo the password is hunter42; sleep 0.8"])
    assert "hunter42" not in r2.stdout

def test_fails_on_purpose(sandbox):
    r = sandbox(BUSYBOX, ["/bin/sh", "-c", "sleep 0.8; exit 3"])
    assert r.exit_code == 0
'''

PAGE_FACTS = """(() => {
  const rect = e => { const b = e.getBoundingClientRect(); return [b.left, b.top + scrollY, b.width, b.height]; };
  return {
    bars: [...document.querySelectorAll('svg.timeline rect.bar')].map(b => b.getBBox().width),
    timeline: [...document.querySelectorAll('svg.timeline')].map(rect),
    plots: [...document.querySelectorAll('svg.plot')].map(p => ({rect: rect(p),
      lines: [...p.querySelectorAll('polyline.line')].map(l => [l.classList[1], l.getTotalLength()])})),
    rows: [...document.querySelectorAll('table.sortable tbody tr')].map(r => r.cells[0].textContent),
  };
})()"""


def _pixels(image: Image.Image, rect: list[float]) -> list[tuple[int, ...]]:
    x, y, w, h = (int(round(v)) for v in rect)
    raw = image.crop((x, y, x + w, y + h)).convert("RGB").tobytes()
    return [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]


def _ink(image: Image.Image, rect: list[float]) -> float:
    """Share of a chart's pixels that are not page white."""
    pixels = _pixels(image, rect)
    return sum(1 for p in pixels if p != (255, 255, 255)) / max(1, len(pixels))


def _has_color(image: Image.Image, rect: list[float], rgb: tuple[int, int, int], tol: int = 40) -> bool:
    return any(all(abs(a - b) <= tol for a, b in zip(p, rgb, strict=True)) for p in _pixels(image, rect))


def test_a_real_runs_report_renders_in_chromium(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_suite.py").write_text(textwrap.dedent(SUITE))
    (suite / "cleanroom.toml").write_text(POLICY)
    report_json = tmp_path / "report.json"
    env = {**os.environ, "CLEANROOM_TRACE_DIR": str(tmp_path / "traces"), "CLEANROOM_AUDIT_DIR": str(tmp_path / "audit")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite),
                           "--cleanroom-policy", str(suite / "cleanroom.toml"), "--cleanroom-report", str(report_json)],
                          capture_output=True, text=True, env=env, cwd=suite, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # one test fails on purpose
    report = json.loads(report_json.read_text())
    tests = {t["nodeid"].rsplit("::", 1)[-1]: t for t in report["tests"]}
    assert tests["test_fills_memory"]["outcome"] == "passed" and tests["test_fails_on_purpose"]["outcome"] == "failed"
    trace_ids = {t["trace_id"] for t in tests.values()}
    assert len(trace_ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids)
    assert "cleanroom traces" in proc.stdout and all(t in proc.stdout for t in trace_ids)
    sandboxes = [s for t in tests.values() for s in t["sandboxes"]]
    assert len(sandboxes) == 3
    assert all(len(s["timeseries"]) >= 3 and set(s["phases"]) >= {"create", "run", "remove"} for s in sandboxes)
    assert any(a["state"] == "firing" and a["threshold"] == "max_memory_usage_bytes"
               for a in report["environment"]["alerts"])
    assert report["totals"]["audit_verified"] is True
    assert report["totals"]["redactions"]
    spans = [json.loads(line) for f in (tmp_path / "traces").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert {s["context"]["trace_id"].removeprefix("0x") for s in spans if s["name"] == "test"} == trace_ids

    html = tmp_path / "report.html"
    rendered = cleanroom_cli("report", "render", str(report_json), "-o", str(html))
    assert rendered.returncode == 0, rendered.stderr
    page = html.read_text()
    assert "hunter42" not in page and "hunter42" not in report_json.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched

    browser = Chromium(tmp_path / "profile", width=1280, height=900)
    try:
        browser.open(html.as_uri())
        facts = browser.evaluate(PAGE_FACTS)
        shot = browser.screenshot(tmp_path / "report.png")
        errors = browser.errors()
        browser.evaluate("document.querySelectorAll('table.sortable th')[2].click()")  # the one script: sorting
        assert browser.errors() == errors
        resorted = browser.evaluate(PAGE_FACTS)["rows"]
        browser.open("data:text/html,<script>null.boom()</script>")  # the check can see a script error
        assert len(browser.errors()) > len(errors)
    finally:
        browser.close()
    print(f"\nscreenshot: {shot}")
    assert errors == []
    assert sorted(resorted) == sorted(facts["rows"]) and len(facts["rows"]) == 2
    assert len(facts["bars"]) == len(sandboxes) and all(w >= 2 for w in facts["bars"])
    assert len(facts["plots"]) == len(sandboxes)
    image = Image.open(shot)
    [timeline_rect] = facts["timeline"]
    assert _ink(image, timeline_rect) > 0.02 and _has_color(image, timeline_rect, (0x16, 0xA3, 0x4A))
    assert _has_color(image, timeline_rect, (0xDC, 0x26, 0x26))  # the failed test's sandbox
    for plot in facts["plots"]:
        assert {name for name, length in plot["lines"] if length > 20} == {"mem", "cpu"}
        assert _ink(image, plot["rect"]) > 0.05
        assert _has_color(image, plot["rect"], (0x25, 0x63, 0xEB)) and _has_color(image, plot["rect"],
                                                                                      (0xEA, 0x58, 0x0C))
