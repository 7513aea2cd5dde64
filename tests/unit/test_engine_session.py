"""Sessions without Podman: the request a session makes, exec through the fake engine,
safe unpacking of what a sandbox sends back, per-exec usage, the static-binary check."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time

import pytest
from fake_podman import FakePodman

from sandbox.engine import cleanup
from sandbox.engine.frames import STDOUT
from sandbox.engine.helpers import HELPER_TARGET, INIT_TARGET, catatonit, is_static
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.session import Session
from sandbox.engine.session_files import one_file, split, tar_of_bytes, unpack
from sandbox.engine.session_usage import CgroupCounters, argv0, exec_usage
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


def test_a_session_pauses_in_catatonit_with_the_helper_mounted_read_only(tmp_path):
    sb, fake, audit = _session(tmp_path)
    spec = next(iter(fake.containers.values())).spec
    assert spec["entrypoint"] == [INIT_TARGET] and spec["command"] == ["-P"]
    binds = {m["destination"]: m for m in spec["mounts"] if m["type"] == "bind"}
    assert set(binds) == {INIT_TARGET, HELPER_TARGET}
    assert all("ro" in m["options"] for m in binds.values())
    assert {"SETUID", "SETGID"} <= set(spec["cap_add"])  # for the helper, which drops them
    sb.close()
    sb.close()
    assert fake.containers == {} and cleanup.run_all(owner=ENV_ID) == []
    assert [e for e, _ in audit if e.startswith("session")] == ["session.opened", "session.closed"]


def test_exec_goes_through_the_helper_and_comes_back_redacted(tmp_path):
    with _session(tmp_path)[0] as sb:
        fake = sb._api
        result = sb.exec(["make", "test"], stdin=b"in", user="1000")
    e = next(iter(fake.execs.values()))
    cmd = e["command"]
    assert cmd[:4] == [HELPER_TARGET, "-s", "-u", "1000"] and cmd[-3:] == ["--", "make", "test"]
    assert "-W" not in cmd  # no cgroup confiner here: nothing to wait for
    assert e["user"] == "0" and e["workdir"] == "/w" and e["stdin"] == b"in"
    assert "hunter2" not in result.stdout and result.redactions
    with pytest.raises(ContainerError, match="closed"):
        sb.exec(["x"])


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


def test_static_check_tells_catatonit_from_a_dynamic_binary(tmp_path):
    assert is_static(catatonit())
    assert not is_static("/bin/ls")
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not is_static(tmp_path / "text")


def test_a_timed_out_exec_whose_pid_is_unknown_ends_the_session_never_kill_zero(tmp_path, monkeypatch):
    killed = []
    monkeypatch.setattr("sandbox.engine.session.os.kill", lambda pid, sig: killed.append(pid))
    sb, fake, audit = _session(tmp_path)
    with sb:
        with pytest.raises(TimeoutExceeded) as info:
            sb.exec(["forever"], timeout=0.1)
        assert info.value.result.timed_out
        assert killed == [] and "kill" in fake.log  # the sandbox, not our own process group
        with pytest.raises(TimeoutExceeded):
            sb.exec(["x"])
    assert any(d.get("detail", "").startswith("an exec's timeout") for e, d in audit if e == "limit.breach")


class _FailingDriver:
    def __init__(self):
        self.calls = 0

    def place(self, rel, pid):
        self.calls += 1
        raise RuntimeError(f"pid {pid} is not in memory:{rel} after placement")

    def read_usage(self, rel):
        return {}


def test_a_failed_placement_check_of_a_process_that_moved_on_is_a_placement():
    # The helper goes on only once placed: a process no longer running it was placed
    # (a fast command may have exited before the driver's own check read its cgroups).
    driver = _FailingDriver()
    CgroupCounters(driver, "env/sb").place(os.getpid(), waiting="/.cleanroom/helper")
    assert driver.calls == 1
    still_waiting = argv0(os.getpid())
    with pytest.raises(ContainerError, match="after placement"):
        CgroupCounters(driver, "env/sb").place(os.getpid(), waiting=still_waiting)
    assert driver.calls == 4  # tried again, then reported every attempt
