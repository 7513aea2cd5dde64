"""One confined sandbox through the engine and the CLI, against real rootless Podman."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from podman_helpers import BUSYBOX, REPO, assert_sigterm_removes_its_container, cleanroom_cli, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, TimeoutExceeded
from sandbox.engine.teardown.ownership import LABEL_OWNER_PID

STRICT = REPO / "policies" / "strict.toml"


@pytest.fixture
def strict_env(tmp_path, podman_url):
    config = CleanroomConfig.from_file(STRICT)
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        yield env


def test_cli_run_prints_both_streams_and_exits_with_the_command_code():
    proc = cleanroom_cli("run", "--policy", str(STRICT), BUSYBOX, "--",
                         "/bin/sh", "-c", "echo hi; echo err >&2; exit 3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines()[0] == "hi"
    assert "err" in proc.stderr.splitlines()
    summary = proc.stderr.strip().splitlines()[-1]
    assert summary.startswith("cleanroom: exit 3")
    assert "audit " in summary


def test_cli_timeout_kills_within_about_two_seconds_and_names_the_timeout(podman_api):
    start = time.monotonic()
    proc = cleanroom_cli("run", "--policy", str(STRICT), "--timeout", "1", BUSYBOX, "--", "/bin/sleep", "30")
    elapsed = time.monotonic() - start
    assert proc.returncode == 124
    assert "timeout" in proc.stderr and "1 s" in proc.stderr
    # The whole CLI (python start-up included) must come back well before the command would.
    assert elapsed < 4, elapsed
    leftovers = [c for c in containers_with_label(podman_api, "io.cleanroom.kind=sandbox")
                 if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())]
    assert leftovers == []


def test_sigkilled_run_leaves_a_container_that_prune_removes(podman_api):
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "run", "--policy", str(STRICT),
                             BUSYBOX, "--", "/bin/sh", "-c", "echo started; sleep 60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "started"
        mine = f"{LABEL_OWNER_PID}={proc.pid}"
        assert len(containers_with_label(podman_api, mine)) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert len(containers_with_label(podman_api, mine)) == 1  # SIGKILL cannot clean up
        pruned = cleanroom_cli("prune")
        assert pruned.returncode == 0, pruned.stderr
        assert "removed container" in pruned.stdout
        assert containers_with_label(podman_api, mine) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_cleans_up_its_own_sandbox(podman_api, tmp_path):
    code = (
        "import sys\n"
        "from sandbox import CleanroomConfig, CleanroomEnvironment\n"
        f"cfg = CleanroomConfig.from_file({str(STRICT)!r})\n"
        f"with CleanroomEnvironment(cfg, audit_dir={str(tmp_path)!r}) as env:\n"
        "    env.run('" + BUSYBOX + "', ['/bin/sh', '-c', 'echo started; sleep 60'],\n"
        "            on_stdout=lambda t: (sys.stdout.write(t), sys.stdout.flush()))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert_sigterm_removes_its_container(proc, podman_api, "started")


def test_result_is_separate_streams_with_duration(strict_env):
    seen = []
    r = strict_env.run(BUSYBOX, ["/bin/sh", "-c", "echo out1; echo err1 >&2; echo out2"], on_stdout=seen.append)
    assert r.exit_code == 0
    assert r.stdout == "out1\nout2\n"
    assert r.stderr == "err1\n"
    assert "".join(seen) == "out1\nout2\n"
    assert r.duration_seconds > 0
    assert r.verdict == "passed"


def test_strict_policy_confines_the_process(strict_env):
    script = (
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status;"
        "touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly;"
        "touch /tmp/ok && echo tmp-writable;"
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"
    )
    r = strict_env.run(BUSYBOX, ["/bin/sh", "-c", script])
    lines = r.stdout.split()
    assert "CapEff:\t0000000000000000".split() == r.stdout.splitlines()[0].split()
    assert "NoNewPrivs:\t1".split() == r.stdout.splitlines()[1].split()
    assert "root-readonly" in lines and "tmp-writable" in lines
    # network none: loopback is the only interface
    assert [x for x in lines[-3:] if x in ("lo", "eth0", "tap0")] == ["lo"]


def test_deterministic_execution_pins_seed_hostname_and_tz(tmp_path, podman_url):
    config = CleanroomConfig.from_toml(
        "[cleanroom]\nenable_deterministic_execution = true\ndeterministic_seed = 42\n"
    )
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "echo $CLEANROOM_SEED $PYTHONHASHSEED $TZ; hostname"])
    assert r.stdout.split() == ["42", "42", "UTC", "cleanroom"]


def test_timeout_raises_with_last_output(strict_env):
    with pytest.raises(TimeoutExceeded) as info:
        strict_env.run(BUSYBOX, ["/bin/sh", "-c", "echo before-hang; sleep 30"], timeout=1)
    assert info.value.timeout == 1
    assert "before-hang" in str(info.value)


def test_missing_image_is_a_container_error_with_the_fix(strict_env):
    with pytest.raises(ContainerError) as info:
        strict_env.run("localhost/cleanroom/does-not-exist:1", ["/bin/true"])
    assert "not found" in str(info.value) and "images build" in str(info.value)


def test_failed_start_is_a_container_error_and_leaves_nothing(strict_env, podman_api):
    with pytest.raises(ContainerError) as info:
        strict_env.run(BUSYBOX, ["/no/such/binary"])
    assert "start failed" in str(info.value)
    assert info.value.exit_code == 127  # the shell's "command not found", as podman run reports
    mine = f"{LABEL_OWNER_PID}={os.getpid()}"
    assert containers_with_label(podman_api, mine) == []


def test_labels_mark_environment_and_owner(strict_env, podman_api):
    seen = {}

    def peek(_text):
        found = containers_with_label(podman_api, f"io.cleanroom.environment={strict_env.id}")
        seen["n"] = len(found)
        seen["labels"] = found[0]["Labels"] if found else {}

    strict_env.run(BUSYBOX, ["/bin/echo", "x"], on_stdout=peek)
    assert seen["n"] == 1
    assert seen["labels"][LABEL_OWNER_PID] == str(os.getpid())
    assert seen["labels"]["io.cleanroom.kind"] == "sandbox"
