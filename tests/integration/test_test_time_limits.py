"""resource_limits.max_test_execution_time, the per-test wall clock, in the pytest plugin
and in execute_test: the test fails naming the limit, and its sandboxes are killed and
removed (test_execution_timeout stays the separate, per-sandbox limit)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from podman_helpers import BUSYBOX, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment
from sandbox.engine.teardown.ownership import LABEL_ENV

SUITE = f'''
import os, time
import pytest

@pytest.fixture(autouse=True)
def _record_env(cleanroom):
    with open(os.environ["CLEANROOM_TEST_OUT"], "w") as f:
        f.write(cleanroom.id)

def test_sleeps_past_the_limit(cleanroom):
    time.sleep(30)

def test_waits_on_a_sandbox_past_the_limit(sandbox):
    sandbox("{BUSYBOX}", ["/bin/sleep", "30"])

def test_quick(cleanroom):
    assert cleanroom.run("{BUSYBOX}", ["/bin/echo", "ok"]).stdout == "ok\\n"
'''


def test_a_plugin_test_past_max_test_execution_time_fails_naming_it(tmp_path, podman_api):
    (tmp_path / "cleanroom.toml").write_text("[cleanroom.resource_limits]\nmax_test_execution_time = 3\n"
                                             "[cleanroom]\ntest_execution_timeout = 120\n")
    (tmp_path / "test_slow.py").write_text(SUITE)
    out = tmp_path / "env-id"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "CLEANROOM_TEST_OUT": str(out)})
    assert time.monotonic() - t0 < 60  # neither test waited out its 30 s
    assert "2 failed, 1 passed" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count("exceeded its timeout of 3 s") >= 2
    assert "(resource_limits.max_test_execution_time)" in r.stdout
    assert containers_with_label(podman_api, f"{LABEL_ENV}={out.read_text()}") == []


def test_execute_test_kills_the_sandboxes_of_a_test_out_of_time(tmp_path, podman_url, podman_api):
    cfg = CleanroomConfig.from_toml("[cleanroom.resource_limits]\nmax_test_execution_time = 1.5\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        t0 = time.monotonic()
        outcome = env.execute_test("slow", lambda: env.run(BUSYBOX, ["/bin/sleep", "60"]))
        assert outcome.verdict == "timeout" and "1.5 s" in outcome.error
        assert time.monotonic() - t0 < 10
        deadline = time.monotonic() + 20  # killed: its run ends and removes it
        while containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []
        breach = [e for e in env.get_security_events() if e.get("limit") == "test_time"]
        assert len(breach) == 1 and len(breach[0]["killed"]) == 1
