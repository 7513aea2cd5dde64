"""`cleanroom serve`: health and Prometheus metrics on loopback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from podman_helpers import REPO


def test_serve_answers_health_and_metrics_on_loopback():
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stderr.readline()
        m = re.search(r"http://(127\.0\.0\.1):(\d+)/metrics", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(2)}"
        with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
            health = json.loads(resp.read())
        assert resp.status == 200 and health["ok"] is True and health["engine"].startswith("unix://")
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "cleanroom_engine_up 1.0" in metrics
        assert "cleanroom_orphans" in metrics
    finally:
        proc.terminate()  # our own child, by its PID
        proc.wait(timeout=10)
