"""Sessions against real rootless Podman: several execs in one confined sandbox, files
in and out, a limit hit in one exec reported for that exec only, timeouts, SIGTERM."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import msgspec
import pytest
from podman_helpers import BUSYBOX, REPO, SERVICES, assert_sigterm_removes_its_container, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, Mount, PolicyError, TimeoutExceeded
from sandbox.engine.ownership import LABEL_ENV

STRICT = REPO / "policies" / "strict.toml"


def _strict(**security) -> CleanroomConfig:
    config = CleanroomConfig.from_file(STRICT)
    return config.with_changes(security_policy=msgspec.structs.replace(config.security_policy, **security))


@pytest.fixture
def env(tmp_path, podman_url):
    with CleanroomEnvironment(_strict(allowed_mount_paths=[str(tmp_path)]), url=podman_url,
                              audit_dir=tmp_path / "audit") as env:
        yield env


def _audit(env) -> list[dict]:
    return [msgspec.json.decode(line) for line in env.audit_path.read_text().splitlines()]


def test_three_execs_files_in_and_out_in_one_confined_sandbox(env, tmp_path, podman_api):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "data.txt").write_text("line one\nline two\n")
    (src / "top.txt").write_text("top\n")
    with env.session(BUSYBOX, workdir="/tmp") as sb:
        first = sb.exec(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        second = sb.exec(["/bin/sh", "-c", "cat /proc/self/cgroup; pwd; echo api_key=abc123secret"])
        third = sb.exec(["/bin/sh", "-c", "cat; echo; id -u"], stdin=b"from stdin")
        sb.write_file("/tmp/in.json", b'{"n": 1}')
        sb.copy_in(src, "/tmp/src")
        fourth = sb.exec(["/bin/sh", "-c", "cat /tmp/in.json; echo; cat /tmp/src/pkg/data.txt; "
                                           "echo made > /tmp/src/pkg/new.txt; echo 'token=tok-in-a-file' > /tmp/out"])
        data = sb.read_file("/tmp/out")
        sb.copy_out("/tmp/src", tmp_path / "back")
    assert (first.exit_code, first.stdout, first.stderr) == (3, "out\n", "err\n")
    assert env.id in second.stdout, "the exec ran outside the sandbox's cgroup"
    assert "/tmp\n" in second.stdout and "abc123secret" not in second.stdout
    assert third.stdout == "from stdin\n0\n"
    assert fourth.stdout == '{"n": 1}\nline one\nline two\n'
    assert all(r.duration_seconds > 0 and r.usage.cpu_seconds is not None for r in (first, second, third, fourth))
    # What was asked for comes back as it is (not redacted), and the audit proves what left.
    assert data == b"token=tok-in-a-file\n"
    back = tmp_path / "back" / "src"
    assert (back / "pkg" / "data.txt").read_text() == "line one\nline two\n"
    assert (back / "pkg" / "new.txt").read_text() == "made\n"
    assert (back / "top.txt").read_text() == "top\n"
    records = _audit(env)
    read = next(r for r in records if r["event"] == "session.read")
    assert read["data"]["sha256"] == hashlib.sha256(data).hexdigest() and read["data"]["bytes"] == len(data)
    assert any(r["event"] == "session.copy_out" and r["data"]["files"] == 3 for r in records)
    assert "tok-in-a-file" not in env.audit_path.read_text()
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []


def test_a_limit_hit_in_one_exec_is_that_execs_breach_only(env):
    with env.session(SERVICES) as sb:
        before = sb.exec(["/bin/true"])
        hog = sb.exec(["python3", "-c", "x = bytearray(400 << 20); print('survived')"])
        after = sb.exec(["/bin/echo", "fine"])
        bomb = sb.exec(["/bin/sh", "-c", "i=0; while [ $i -lt 200 ]; do sleep 1 & i=$((i+1)); done 2>/dev/null; "
                                         "wait; echo bombed"])
        last = sb.exec(["/bin/echo", "still fine"])
    assert before.breaches == [] and after.breaches == [] and last.breaches == []
    assert [b.limit for b in hog.breaches] == ["memory"] and hog.oom_killed and "survived" not in hog.stdout
    assert hog.exit_code == 137
    assert after.stdout == "fine\n"
    assert [b.limit for b in bomb.breaches] == ["pids"] and bomb.usage.pids_limit_hits >= 1
    assert last.stdout == "still fine\n"


def test_an_exec_timeout_kills_that_command_and_the_session_goes_on(env):
    with env.session(BUSYBOX) as sb:
        start = time.monotonic()
        with pytest.raises(TimeoutExceeded) as info:
            sb.exec(["/bin/sh", "-c", "echo started; sleep 30 & sleep 30"], timeout=1)
        assert time.monotonic() - start < 5
        assert info.value.result.timed_out and "started" in info.value.result.stdout
        ps = sb.exec(["/bin/sh", "-c", "ps -o comm | grep -c sleep || true"])
        assert ps.stdout.strip() == "0", "the timed-out exec's children survived"
        assert sb.exec(["/bin/echo", "next"]).stdout == "next\n"


def test_a_sessions_total_time_is_bounded(env, podman_api):
    with env.session(BUSYBOX, timeout=1.5) as sb:
        with pytest.raises(TimeoutExceeded):
            sb.exec(["/bin/sleep", "10"])
        with pytest.raises(TimeoutExceeded):
            sb.exec(["/bin/true"])
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []
    assert any(r["event"] == "limit.breach" and r["data"].get("detail") == "the session's total time"
               for r in _audit(env))


def test_an_exec_can_run_as_another_user(env):
    with env.session(BUSYBOX) as sb:
        nobody = sb.exec(["/bin/sh", "-c", "id -u; id -g; cat /proc/self/status | grep CapEff"], user="65534")
        root = sb.exec(["/bin/sh", "-c", "grep CapEff /proc/self/status"])
    assert nobody.stdout.splitlines()[:2] == ["65534", "65534"], nobody.stderr
    # The helper's switching capabilities are gone before the command runs, whoever it is.
    assert nobody.stdout.splitlines()[2].split()[1] == "0000000000000000"
    assert root.stdout.split()[1] == "0000000000000000"


def test_read_back_is_bounded_by_max_copy_out_bytes(tmp_path, podman_url):
    config = _strict(allowed_mount_paths=[str(tmp_path)], max_copy_out_bytes=64 * 1024)
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        with env.session(BUSYBOX) as sb:
            sb.exec(["/bin/sh", "-c", "head -c 200000 /dev/zero > /tmp/big; echo small > /tmp/small"])
            with pytest.raises(ContainerError, match="max_copy_out_bytes"):
                sb.read_file("/tmp/big")
            with pytest.raises(ContainerError, match="max_copy_out_bytes"):
                sb.copy_out("/tmp", tmp_path / "out")
            assert sb.read_file("/tmp/small") == b"small\n"


def test_copy_in_is_judged_like_a_mount(env, tmp_path):
    with env.session(BUSYBOX) as sb:
        with pytest.raises(PolicyError, match="outside the allowed paths"):
            sb.copy_in("/etc", "/tmp/etc")
        with pytest.raises(PolicyError):
            env.session(BUSYBOX, mounts=[Mount("/etc", "/etc2")])


_SIGTERM_SCRIPT = """
import sys, time
from sandbox import CleanroomConfig, CleanroomEnvironment
with CleanroomEnvironment(CleanroomConfig.from_file(sys.argv[1]), audit_dir=sys.argv[2]) as env:
    with env.session("localhost/cleanroom/busybox:latest") as sb:
        sb.exec(["/bin/true"])
        print("ready", flush=True)
        time.sleep(60)
"""


def test_sigterm_closes_a_session(tmp_path, podman_api):
    proc = subprocess.Popen([sys.executable, "-c", _SIGTERM_SCRIPT, str(STRICT), str(tmp_path / "audit")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert_sigterm_removes_its_container(proc, podman_api, "ready")
