"""Sessions against real rootless Podman: several execs in one confined sandbox, files
in and out, a limit hit in one exec reported for that exec only, timeouts, SIGTERM, and
the in-sandbox agent (cleanroom-helper -A) that runs each exec: stdin, pipes held open
by background processes, process-group kills, reaping, output in pieces."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time

import msgspec
import pytest
from podman_helpers import BUSYBOX, REPO, SERVICES, assert_sigterm_removes_its_container, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, Mount, PolicyError, TimeoutExceeded
from sandbox.engine.teardown.ownership import LABEL_ENV

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


def test_a_background_process_holding_stdout_does_not_hold_the_exec(env):
    with env.session(BUSYBOX) as sb:
        start = time.monotonic()
        first = sb.exec(["/bin/sh", "-c", "echo before; (sleep 0.6; echo late) & sleep 30 & echo after"])
        assert time.monotonic() - start < 3, "the exec waited for its background processes' pipes"
        assert (first.exit_code, first.stdout) == (0, "before\nafter\n")
        time.sleep(1)
        # Not killed (a session may start servers), and its later output is nobody's result.
        second = sb.exec(["/bin/sh", "-c", "echo two; ps -o comm | grep -c sleep"])
        assert second.stdout == "two\n1\n"


def test_the_agent_reaps_orphans(env):
    with env.session(BUSYBOX) as sb:
        for _ in range(3):
            sb.exec(["/bin/sh", "-c", "sleep 0.2 & sleep 0.1 & exit 0"])  # orphans, reparented to the agent
        time.sleep(0.6)
        zombies = sb.exec(["/bin/sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"])
        first = sb.exec(["/bin/sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"])
    assert zombies.stdout.strip() == "0"
    assert first.stdout.startswith("/.cleanroom/helper -A")


def test_stdin_large_binary_unread_and_after_a_timeout(env):
    big = bytes(range(256)) * (32 << 10)  # 8 MiB, every byte value (ctrl-p ctrl-q included)
    with env.session(BUSYBOX) as sb:
        counted = sb.exec(["/bin/sh", "-c", "wc -c; echo done >&2"], stdin=big)
        from_file = sb.exec(["/bin/sh", "-c", "md5sum"], stdin=io.BytesIO(big))
        start = time.monotonic()
        unread = sb.exec(["/bin/true"], stdin=big)
        assert time.monotonic() - start < 5 and unread.exit_code == 0
        with pytest.raises(TimeoutExceeded):
            sb.exec(["/bin/sh", "-c", "sleep 30"], stdin=big, timeout=1)
        after = sb.exec(["/bin/sh", "-c", "cat"], stdin=b"\x10\x11still here")
    assert counted.stdout.strip() == str(len(big)) and counted.stderr == "done\n"
    assert from_file.stdout.split()[0] == hashlib.md5(big).hexdigest()
    assert after.stdout == "\x10\x11still here"


def test_env_workdir_and_failures_to_start(env):
    with env.session(BUSYBOX, env={"FROM_SESSION": "s"}) as sb:
        envs = sb.exec(["/bin/sh", "-c", "echo $FROM_SESSION $FROM_EXEC; pwd"], env={"FROM_EXEC": "e"},
                       workdir="/tmp")
        missing_dir = sb.exec(["/bin/pwd"], workdir="/no/such/dir")
        missing_cmd = sb.exec(["/no/such/command"])
        bad_user = sb.exec(["/bin/true"], user="nosuchuser")
        still = sb.exec(["/bin/echo", "ok"])
    assert envs.stdout == "s e\n/tmp\n"
    assert missing_dir.exit_code == 126 and "/no/such/dir" in missing_dir.stderr
    assert missing_cmd.exit_code == 127 and "/no/such/command" in missing_cmd.stderr
    assert bad_user.exit_code == 125 and "no such user" in bad_user.stderr
    assert "nosuchuser" in bad_user.stderr and "REDACTED" not in bad_user.stderr  # named, not taken for a secret
    assert still.stdout == "ok\n"


def test_output_in_pieces_is_redacted_and_never_logged_by_podman(env, podman_api):
    seen: list[str] = []
    with env.session(BUSYBOX) as sb:
        r = sb.exec(["/bin/sh", "-c", "printf 'api_key=abc'; sleep 0.2; printf '123secret\\n'; "
                                      "printf 'password=hun' >&2; sleep 0.2; printf 'ter2\\n' >&2"],
                    on_stdout=seen.append)
        log_config = podman_api.get(f"/containers/{sb._made.handle.id}/json").json()["HostConfig"]["LogConfig"]
    assert "abc123secret" not in r.stdout and "abc123secret" not in "".join(seen) and "[REDACTED" in r.stdout
    assert "hunter2" not in r.stderr and r.redactions
    assert log_config["Type"] == "none"  # the agent's channel carries raw output: not kept on disk


def test_a_root_command_keeping_capabilities_cannot_write_into_the_agents_channel(tmp_path, podman_url):
    # Podman's default capability set: commands keep SETUID and SETGID and run as the
    # container's root, the agent's own uid; only the agent's non-dumpable flag keeps
    # /proc/1/fd closed. A forged frame would otherwise end or mislead the session.
    config = _strict(drop_all_capabilities=False)
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        with env.session(BUSYBOX) as sb:
            forge = sb.exec(["/bin/sh", "-c", "id -u; grep CapEff /proc/self/status; printf 'X\\0\\0\\0' > /proc/1/fd/1"],
                            timeout=10)
            after = sb.exec(["/bin/echo", "intact"], timeout=10)
    assert forge.stdout.splitlines()[0] == "0" and forge.stdout.split()[2] != "0000000000000000"
    assert forge.exit_code != 0 and "Permission denied" in forge.stderr
    assert after.stdout == "intact\n"


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
