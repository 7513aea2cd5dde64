"""The engine when its Podman service dies: a managed service is restarted once (and
audited) and the session carries on; any other gives EngineUnavailable naming the
socket and the fix; a sandbox running at that moment gets a clear verdict.

Each test runs a Podman service of its own on its own socket (the shared one serves
the rest of the suite), kills it by the PIDs it found for that socket, and stops what
it started the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
from podman_helpers import BUSYBOX, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, EngineUnavailable
from sandbox.engine.podman.connection import probe
from sandbox.engine.teardown.ownership import LABEL_ENV


def _service_pids(url: str) -> list[int]:
    """This user's podman processes serving ``url`` (the wrapper and the server)."""
    return [p.pid for p in psutil.process_iter(["cmdline", "uids"])
            if p.info["uids"] and p.info["uids"].real == os.getuid()
            and "service" in (p.info["cmdline"] or []) and url in (p.info["cmdline"] or [])]


def _kill(url: str) -> None:
    for pid in _service_pids(url):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while _service_pids(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probe(url) is not None, "the service still answers"


@pytest.fixture
def service(tmp_path):
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    url = f"unix://{runtime}/podman/recovery-{os.getpid()}-{tmp_path.name[-12:]}.sock"
    subprocess.run(["setsid", "-f", "podman", "system", "service", "--time=0", url],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    deadline = time.monotonic() + 20
    while probe(url) is not None:
        assert time.monotonic() < deadline, "the test's own service did not come up"
        time.sleep(0.05)
    pidfile = tmp_path / "service.pid"
    pidfile.write_text("")
    yield url, pidfile
    for pid in _service_pids(url):  # whatever serves it now: ours, or the one the engine restarted
        os.kill(pid, signal.SIGTERM)
    Path(url.removeprefix("unix://")).unlink(missing_ok=True)


def _audit(env) -> list[dict]:
    return [json.loads(line) for line in env.audit_path.read_text().splitlines()]


def test_a_managed_service_that_died_is_restarted_once_and_the_session_carries_on(service, tmp_path, monkeypatch):
    url, pidfile = service
    monkeypatch.setenv("CLEANROOM_MANAGED_SOCKET", url)
    monkeypatch.setenv("CLEANROOM_MANAGED_PIDFILE", str(pidfile))
    with CleanroomEnvironment(CleanroomConfig.default(), url=url, audit_dir=tmp_path / "audit") as env:
        assert env.run(BUSYBOX, ["/bin/echo", "before"]).stdout == "before\n"
        env._runner.drain()  # its removal (after the result) is done: the service dies between two runs
        _kill(url)
        assert env.run(BUSYBOX, ["/bin/echo", "after"]).stdout == "after\n"
        restarted = [r for r in _audit(env) if r["event"] == "engine.restarted"]
        assert len(restarted) == 1 and restarted[0]["data"]["url"] == url
        served_by = int(pidfile.read_text())
        assert served_by in _service_pids(url)  # the PID file names the process that serves the socket
        assert psutil.Process(served_by).cwd() == "/"  # never a directory that may go away
        # Once per environment: a second death is an error that says so, not a restart loop.
        env._runner.drain()
        _kill(url)
        with pytest.raises(EngineUnavailable) as info:
            env.run(BUSYBOX, ["/bin/true"])
        assert url in str(info.value) and "restarts it once per environment" in info.value.fix


def test_an_unmanaged_service_that_died_is_engine_unavailable_with_the_socket_and_the_fix(service, tmp_path,
                                                                                         podman_api):
    url, _ = service
    env = CleanroomEnvironment(CleanroomConfig.default(), url=url, audit_dir=tmp_path / "audit")
    with env:
        assert env.run(BUSYBOX, ["/bin/echo", "ok"]).exit_code == 0
        env._runner.drain()  # its removal (after the result) is done: the service dies between two runs
        _kill(url)
        with pytest.raises(EngineUnavailable) as info:
            env.run(BUSYBOX, ["/bin/true"])
    text = str(info.value)
    assert url in text and "the service stopped answering during " in text
    assert "podman system service" in info.value.fix and "operation failed" not in text
    # Nothing of this environment is left behind (containers are shared storage: the
    # suite's own service sees them).
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []


def test_a_sandbox_running_when_the_service_died_gets_a_clear_verdict(service, tmp_path, monkeypatch, podman_api):
    url, pidfile = service
    monkeypatch.setenv("CLEANROOM_MANAGED_SOCKET", url)
    monkeypatch.setenv("CLEANROOM_MANAGED_PIDFILE", str(pidfile))
    with CleanroomEnvironment(CleanroomConfig.default(), url=url, audit_dir=tmp_path / "audit") as env:
        started = threading.Event()
        # The output arrives before the start call has returned; kill once it surely has.
        timer = threading.Thread(target=lambda: (started.wait(20), time.sleep(0.5), _kill(url)))
        timer.start()
        with pytest.raises(ContainerError) as info:
            env.run(BUSYBOX, ["/bin/sh", "-c", "echo started; sleep 3; echo finished"],
                    on_stdout=lambda text: started.set())
        timer.join()
        assert "the Podman service stopped while the sandbox ran" in str(info.value)
        assert "started" in info.value.last_output
        assert [r["event"] for r in _audit(env)].count("sandbox.lost") == 1
        env_id = env.id
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env_id}") == []
