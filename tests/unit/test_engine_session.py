"""Sessions without Podman: the request a session makes, exec through the fake engine's
agent, safe unpacking of what a sandbox sends back, per-exec usage, the static-binary
check. The agent's framing itself: tests/unit/test_session_agent.py."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time

import pytest
from fake_podman import FakePodman

from sandbox.engine.helper.build import HELPER_TARGET, helper, is_static
from sandbox.engine.podman.frames import STDERR, STDOUT
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.session.files import one_file, split, tar_of_bytes, unpack
from sandbox.engine.session.session import Session
from sandbox.engine.session.usage import exec_usage
from sandbox.engine.teardown import cleanup
from sandbox.engine.types import Usage
from sandbox.errors import ContainerError, TimeoutExceeded
from sandbox.policy import CleanroomConfig
from sandbox.redact import Redactor

ENV_ID = "env-unit-session"


def _program(command):
    if command and command[0] == "forever":
        return None, 0
    return [(STDOUT, ("ran " + " ".join(command) + " password=hunter2\n").encode())], 0


def _session(tmp_path, **kw):
    fake, audit = FakePodman(_program), []
    runner = SandboxRunner(fake, CleanroomConfig.default(), environment_id=ENV_ID, kernel_view=None,
                           redactor=Redactor(), audit=lambda event, level="Minimal", **d: audit.append((event, d)))
    return Session(runner, runner.request("img", None, workdir="/w"), **kw), fake, audit


def test_a_sessions_first_process_is_the_agent_with_the_helper_mounted_read_only(tmp_path):
    sb, fake, audit = _session(tmp_path)
    spec = next(iter(fake.containers.values())).spec
    assert spec["entrypoint"] == [HELPER_TARGET] and spec["command"] == ["-A"]
    assert spec["stdin"] is True  # the agent's requests arrive on its stdin
    assert spec["log_configuration"] == {"driver": "none"}  # raw output never kept on disk by Podman
    binds = {m["destination"]: m for m in spec["mounts"] if m["type"] == "bind"}
    assert set(binds) == {HELPER_TARGET}
    assert all("ro" in m["options"] for m in binds.values())
    assert {"SETUID", "SETGID"} <= set(spec["cap_add"])  # for the commands' user switch, which drops them
    # The channel is open before the start: not a byte of the agent's is missed.
    assert fake.log.index("attach_channel") < fake.log.index("start")
    sb.close()
    sb.close()
    assert fake.containers == {} and cleanup.run_all(owner=ENV_ID) == []
    assert fake.channels[next(iter(fake.channels))].closed
    assert [e for e, _ in audit if e.startswith("session")] == ["session.opened", "session.closed"]


def test_exec_goes_through_the_agent_and_comes_back_redacted(tmp_path):
    with _session(tmp_path)[0] as sb:
        fake = sb._api
        result = sb.exec(["make", "test"], stdin=b"in", user="1000", env={"A": "1"})
    e = next(iter(fake.execs.values()))
    assert e["command"] == ["make", "test"] and e["user"] == "1000" and e["workdir"] == "/w"
    assert e["env"] == {"A": "1"} and e["stdin"] == b"in" and "i" in e["flags"]
    assert not {"exec_create", "exec_start"} & set(fake.log)  # no exec API call per command
    assert result.exit_code == 0 and result.stdout.startswith("ran make test")
    assert "hunter2" not in result.stdout and result.redactions
    with pytest.raises(ContainerError, match="closed"):
        sb.exec(["x"])


def test_output_cut_into_tiny_pieces_is_reassembled_and_a_split_secret_still_masked(tmp_path):
    def program(command):
        text = b"before password=hunter2 after\n"
        return [(STDOUT, text[:10]), (STDOUT, text[10:20]), (STDERR, b"e1\n"), (STDOUT, text[20:])], 4

    fake, seen = FakePodman(program), []
    fake.agent_piece = 3  # Podman frames of 3 bytes: every agent frame arrives in pieces
    runner = SandboxRunner(fake, CleanroomConfig.default(), environment_id=ENV_ID, kernel_view=None,
                           redactor=Redactor())
    with Session(runner, runner.request("img", None)) as sb:
        result = sb.exec(["x"], on_stdout=seen.append)
    assert result.exit_code == 4 and result.stderr == "e1\n"
    assert result.stdout.startswith("before ") and result.stdout.endswith(" after\n")
    assert "hunter2" not in result.stdout and "hunter2" not in "".join(seen) and result.redactions


def test_a_session_past_its_time_refuses_execs(tmp_path):
    sb, _, _ = _session(tmp_path, timeout=0.05)
    with sb:
        time.sleep(0.1)
        with pytest.raises(TimeoutExceeded):
            sb.exec(["x"])


def test_read_file_is_audited_with_digest_and_size_and_not_redacted(tmp_path):
    sb, fake, audit = _session(tmp_path)
    with sb:
        cid = next(iter(fake.containers))
        fake.archives[(cid, "/tmp/out")] = tar_of_bytes("out", b"password=hunter2\n")
        assert sb.read_file("/tmp/out") == b"password=hunter2\n"
    data = next(d for e, d in audit if e == "session.read")
    assert data["sha256"] == hashlib.sha256(b"password=hunter2\n").hexdigest() and data["bytes"] == 17


def _tar(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _file(name, data=b"x", mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("member", [_file("/abs"), _file("../up"), _file("a/../../up"), _link("l", "/etc"),
                                    _link("l", "../../x"), _link("h", "a", tarfile.LNKTYPE),
                                    (tarfile.TarInfo("dev"), None)])
def test_unpacking_refuses_what_leaves_the_destination(tmp_path, member):
    if member[0].name == "dev":
        member[0].type = tarfile.CHRTYPE
    with pytest.raises(ContainerError):
        unpack(_tar(member), tmp_path / "out")
    assert not (tmp_path / "up").exists()


def test_unpacking_does_not_write_through_a_link_and_drops_setuid(tmp_path):
    got = unpack(_tar(_link("d", "."), _file("run", b"#!/bin/sh\n", 0o4755), _file("d/f", b"in")), tmp_path / "o")
    assert got.files == 2 and got.bytes == len(b"#!/bin/sh\n") + 2
    assert (tmp_path / "o" / "run").stat().st_mode & 0o7777 == 0o755
    assert (tmp_path / "o" / "f").read_bytes() == b"in"


def test_one_file_wants_exactly_a_regular_file():
    assert one_file(tar_of_bytes("a", b"data"), "/a") == b"data"
    with pytest.raises(ContainerError):
        one_file(_tar(_file("a"), _file("b")), "/x")


@pytest.mark.parametrize("path", ["relative", "/", "/.."])
def test_paths_inside_the_sandbox_must_be_absolute_names(path):
    with pytest.raises(ContainerError):
        split(path)


def test_exec_usage_is_the_difference_and_breaches_are_this_execs():
    limits = Usage(memory_limit_bytes=100, pids_limit=10)
    before = {"cpu_ns": 1_000_000_000, "oom_kills": 1, "pids_limit_hits": 0, "peak_memory": 90}
    after = {"cpu_ns": 3_500_000_000, "oom_kills": 1, "pids_limit_hits": 2, "peak_memory": 95, "pids": 3}
    usage, breaches = exec_usage(before, after, limits)
    assert usage.cpu_seconds == 2.5 and usage.oom_kills == 0 and usage.pids_limit_hits == 2
    assert [b.limit for b in breaches] == ["pids"]  # the earlier OOM kill was another exec's
    assert exec_usage({}, {}, limits) == (Usage(), [])


def test_static_check_tells_the_helper_from_a_dynamic_binary(tmp_path):
    assert is_static(helper())
    assert not is_static("/bin/ls")
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not is_static(tmp_path / "text")


def test_a_timed_out_exec_is_killed_through_the_agent_and_the_session_goes_on(tmp_path):
    sb, fake, audit = _session(tmp_path)
    with sb:
        with pytest.raises(TimeoutExceeded) as info:
            sb.exec(["forever"], timeout=0.1)
        assert info.value.result.timed_out and info.value.result.exit_code == 137
        channel = next(iter(fake.channels.values()))
        assert [r.kind for r in channel.sent] == [b"E", b"K"] and channel.sent[1].exec_id == channel.sent[0].exec_id
        assert "kill" not in fake.log  # the command, not the sandbox
        assert sb.exec(["next"]).stdout.startswith("ran next")


def test_a_timed_out_exec_the_agent_does_not_answer_ends_the_session(tmp_path, monkeypatch):
    monkeypatch.setattr("sandbox.engine.session.session._KILL_WAIT", 0.2)
    sb, fake, audit = _session(tmp_path)
    fake.agent_deaf = True
    with sb:
        with pytest.raises(TimeoutExceeded) as info:
            sb.exec(["forever"], timeout=0.1)
        assert info.value.result.timed_out
        assert "kill" in fake.log  # the sandbox, as the fallback
        with pytest.raises(TimeoutExceeded):
            sb.exec(["x"])
    assert any(d.get("detail", "").startswith("an exec's timeout") for e, d in audit if e == "limit.breach")


def test_an_agent_gone_mid_exec_is_an_error_not_a_result(tmp_path):
    sb, fake, _ = _session(tmp_path)
    with sb:
        channel = next(iter(fake.channels.values()))
        threading.Timer(0.1, channel.close).start()
        with pytest.raises(ContainerError, match="agent is gone"):
            sb.exec(["forever"], timeout=5)
        with pytest.raises(ContainerError, match="agent is gone"):
            sb.exec(["x"])
