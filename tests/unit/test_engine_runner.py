"""The runner's stages, driven through the fake Podman API: order, cleanup on every
failure, timeouts, redaction of what reaches the user."""

from __future__ import annotations

import threading

import pytest
from fake_podman import FakePodman

from sandbox.audit.recent import RecentEvents
from sandbox.confine.seccomp import profile_for
from sandbox.engine.launcher import ServiceLauncher, ServiceSpec
from sandbox.engine.networks import EnvironmentNetwork
from sandbox.engine.podman.frames import STDERR, STDOUT
from sandbox.engine.posture import KernelView, Posture, differences, read_seccomp_profile, seccomp_summary
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.teardown import cleanup
from sandbox.engine.types import ConfinerBase, CreateRequest, SandboxHandle
from sandbox.errors import CleanroomError, ContainerError, EngineUnavailable, TimeoutExceeded
from sandbox.policy import CleanroomConfig
from sandbox.redact import Redactor

SECRET = "hunter2-very-secret-value"
ENV_ID = "env-unit-runner"


class RecordingConfiner(ConfinerBase):
    def __init__(self, log: list[str], fail: str | None = None) -> None:
        self.log = log
        self.fail = fail
        self.reserved: set[str] = set()

    def _hook(self, name: str) -> None:
        self.log.append(f"confine.{name}")
        if self.fail == name:
            raise ContainerError(f"confinement failed while holding {SECRET}")

    def before_create(self, request: CreateRequest) -> None:
        self._hook("before_create")
        self.reserved.add(request.name)

    def create_failed(self, request: CreateRequest) -> None:
        self.log.append("confine.create_failed")
        self.reserved.discard(request.name)

    def after_init(self, handle: SandboxHandle) -> None:
        self._hook("after_init")
        self.reserved.discard(handle.name)

    def after_exit(self, handle: SandboxHandle) -> None:
        self._hook("after_exit")

    def release(self, handle: SandboxHandle) -> None:
        self.log.append("confine.release")


def make(program=None, fail_hook: str | None = None):
    log: list[str] = []
    fake = FakePodman(program, log) if program else FakePodman(log=log)
    redactor = Redactor()
    redactor.add_secret(SECRET, "pw")
    audit: list[tuple[str, dict]] = []
    confiner = RecordingConfiner(log, fail_hook)
    runner = SandboxRunner(fake, CleanroomConfig.default(), environment_id=ENV_ID, redactor=redactor,
                           audit=lambda event, level="Minimal", **data: audit.append((event, data)),
                           confiners=[confiner], kernel_view=None)
    return runner, fake, log, audit, confiner


def pending_cleanups() -> list[str]:
    return cleanup.run_all(owner=ENV_ID)  # anything left registered is a leak (and is undone here)


def test_a_run_goes_through_every_stage_in_order():
    runner, fake, log, audit, _ = make()
    result = runner.run(runner.request("img", ["/bin/echo", "hi"]))
    assert result.exit_code == 0 and result.stdout == "/bin/echo hi\n"
    runner.drain()  # a finished sandbox is removed in the background
    order = [e for e in log if e in ("create", "init", "confine.after_init", "attach", "start", "remove")]
    assert order == ["create", "init", "confine.after_init", "attach", "start", "remove"]
    assert log.index("confine.after_exit") < log.index("remove")
    assert log.index("remove") < log.index("confine.release")  # an emptied cgroup can go
    assert fake.containers == {} and pending_cleanups() == []
    events = [e for e, _ in audit]
    assert events[:3] == ["sandbox.created", "sandbox.command", "sandbox.started"]
    assert events.count("sandbox.verdict") == 1 and events.count("sandbox.removed") == 1


def test_a_finished_run_returns_before_its_container_is_removed_and_drain_waits_for_it():
    runner, fake, log, audit, confiner = make()
    release = threading.Event()
    remove = fake.remove_container
    fake.remove_container = lambda cid: (release.wait(5), remove(cid))
    result = runner.run(runner.request("img", ["/bin/echo", "hi"]))
    assert result.stdout == "/bin/echo hi\n"
    assert len(fake.containers) == 1  # still there: the caller did not wait for the removal
    assert "sandbox.removed" not in [e for e, _ in audit]
    release.set()
    runner.drain()
    assert fake.containers == {} and "confine.release" in log and pending_cleanups() == []
    assert [d for e, d in audit if e == "sandbox.removed"] == [{"sandbox": result.sandbox, "exit_code": 0}]


@pytest.mark.parametrize("step", ["create", "init", "attach", "start"])
def test_a_failing_engine_step_removes_everything_and_raises_redacted(step):
    runner, fake, log, _, confiner = make()
    fake.fail[step] = ContainerError(f"{step} failed: podman said {SECRET}")
    with pytest.raises(CleanroomError) as info:
        runner.run(runner.request("img", ["/bin/true"]))
    assert SECRET not in str(info.value)
    assert "[REDACTED:secret:pw]" in str(info.value)
    assert fake.containers == {}, "a container survived the failure"
    assert pending_cleanups() == []
    assert confiner.reserved == set()  # the reservation was given back
    if step != "create":
        assert "remove" in log and "start" not in log[log.index(step) + 1:]


@pytest.mark.parametrize("hook", ["before_create", "after_init"])
def test_a_failing_confinement_never_starts_the_command(hook):
    runner, fake, log, _, confiner = make(fail_hook=hook)
    with pytest.raises(ContainerError) as info:
        runner.run(runner.request("img", ["/bin/true"]))
    assert SECRET not in str(info.value) and "[REDACTED:secret:pw]" in str(info.value)
    assert "start" not in log and "attach" not in log
    assert fake.containers == {} and pending_cleanups() == []
    assert confiner.reserved == set()
    if hook == "before_create":
        assert "create" not in log  # refused before anything existed


def test_a_timeout_kills_and_removes_and_keeps_the_output():
    def forever(command):
        return None, 0

    runner, fake, log, audit, _ = make(forever)
    with pytest.raises(TimeoutExceeded) as info:
        runner.run(runner.request("img", ["/bin/sleep", "inf"]), timeout=0.2)
    assert info.value.timeout == 0.2
    assert log.index("kill") < log.index("remove")
    assert fake.containers == {} and pending_cleanups() == []
    assert info.value.result.timed_out and info.value.result.verdict == "timeout"
    assert ("limit.breach", {"sandbox": info.value.sandbox, "limit": "timeout", "limit_value": 0.2}) in audit


def test_a_secret_split_across_frames_never_reaches_the_result():
    half = len(SECRET) // 2

    def split(command):
        return [(STDOUT, b"pw=" + SECRET[:half].encode()), (STDOUT, SECRET[half:].encode() + b"\n"),
                (STDERR, b"err " + SECRET.encode())], 3

    runner, _, _, _, _ = make(split)
    result = runner.run(runner.request("img", ["/bin/x", SECRET]))
    assert SECRET not in result.stdout + result.stderr + " ".join(result.command)
    assert result.stdout.startswith("pw=[REDACTED") and result.stderr.startswith("err [REDACTED")
    assert result.exit_code == 3 and result.verdict == "failed" and result.redactions


def test_an_unreachable_engine_surfaces_as_engine_unavailable_and_cleans_up():
    runner, fake, _, _, _ = make()
    fake.fail["start"] = EngineUnavailable([("unix:///run/x.sock", "connection refused")], "start it")
    with pytest.raises(EngineUnavailable):
        runner.run(runner.request("img", ["/bin/true"]))
    assert fake.containers == {} and pending_cleanups() == []


def launcher_for(runner: SandboxRunner, fake: FakePodman) -> ServiceLauncher:
    return ServiceLauncher(runner, EnvironmentNetwork(fake, ENV_ID, {}), runner.redactor.add_secret)


def test_a_service_starts_confined_and_its_removal_releases_it():
    runner, fake, log, audit, _ = make()
    service = launcher_for(runner, fake).start(ServiceSpec(image="img", command=["/bin/serve"]), alias="db")
    assert log.index("confine.after_init") < log.index("start")
    assert fake.containers[service.id].spec["networks"] == {f"cleanroom-{ENV_ID}": {"aliases": ["db"]}}
    code, text = service.exec(["/bin/echo", SECRET])
    assert code == 0 and SECRET not in text
    service.remove()
    assert fake.containers == {} and pending_cleanups() == []
    assert log.index("remove") < log.index("confine.after_exit") < log.index("confine.release")
    assert [e for e, _ in audit][-1] == "sandbox.removed"


def test_a_kept_service_is_not_removed_at_cleanup():
    runner, fake, _, _, _ = make()
    service = launcher_for(runner, fake).start_singleton(ServiceSpec(image="img"), name="pg",
                                                         container_name="cleanroom-singleton-pg", digest="d1")
    assert pending_cleanups() == []  # nothing registered for removal ...
    assert service.id in fake.containers  # ... so it survives the environment
    assert fake.containers[service.id].spec["labels"]["io.cleanroom.singleton"] == "pg"


def test_an_already_redacted_error_is_not_redacted_twice():
    runner, fake, _, _, _ = make()
    err = ContainerError("failed\n--- last output (redacted) ---\n[REDACTED:secret:pw] and password=abcdefgh1")
    fake.fail["start"] = err
    with pytest.raises(ContainerError) as info:
        runner.run(runner.request("img", ["/bin/true"]))
    text = str(info.value)
    assert "[REDACTED:secret:pw] and password=[REDACTED:assignment]" in text


HARDENED = seccomp_summary(read_seccomp_profile(str(profile_for(CleanroomConfig.default().security_policy))))
SC = {"seccomp_default": HARDENED[0], "seccomp_denied": HARDENED[1]}


@pytest.mark.parametrize(("posture", "words"), [
    (Posture(read_only_root=False, no_new_privileges=True, network_mode="none", writable_mounts=["/tmp"], **SC),
     "read-only root: policy True, container False"),
    (Posture(read_only_root=True, no_new_privileges=False, network_mode="none", writable_mounts=["/tmp"], **SC),
     "no-new-privileges"),
    (Posture(read_only_root=True, no_new_privileges=True, network_mode="slirp4netns", writable_mounts=["/tmp"],
             **SC),
     "network mode: policy none, container slirp4netns"),
    (Posture(read_only_root=True, no_new_privileges=True, network_mode="none", writable_mounts=["/tmp", "/etc"],
             **SC),
     "writable mounts the policy did not ask for: ['/etc']"),
    (Posture(read_only_root=True, no_new_privileges=True, network_mode="none", privileged=True,
             writable_mounts=["/tmp"], **SC), "privileged"),
    (Posture(read_only_root=True, no_new_privileges=True, network_mode="none", writable_mounts=["/tmp"],
             seccomp_default=HARDENED[0], seccomp_denied=[n for n in HARDENED[1] if n != "keyctl"]),
     "seccomp: the profile denies ['keyctl'], the container's filter does not"),
    (Posture(read_only_root=True, no_new_privileges=True, network_mode="none", writable_mounts=["/tmp"],
             seccomp_default="SCMP_ACT_ALLOW", seccomp_denied=HARDENED[1]), "seccomp default action"),
])
def test_a_posture_mismatch_aborts_before_anything_runs(posture, words):
    runner, fake, log, audit, confiner = make()
    fake.posture_override = posture
    with pytest.raises(ContainerError) as info:
        runner.run(runner.request("img", ["/bin/true"]))
    assert words in str(info.value) and "was not started" in str(info.value)
    assert "confine.after_init" not in log and "start" not in log
    assert fake.containers == {} and pending_cleanups() == [] and confiner.reserved == set()
    assert any(e == "posture.mismatch" for e, _ in audit)


def test_the_kernel_view_is_compared_too():
    spec = {"read_only_filesystem": True, "no_new_privileges": True, "cap_drop": ["ALL"], "cap_add": ["CHOWN"],
            "netns": {"nsmode": "none"}, "mounts": []}
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}
    faithful = Posture(read_only_root=True, no_new_privileges=True, network_mode="none",
                       seccomp_default="SCMP_ACT_ERRNO")
    good = KernelView(bounding_caps=["CHOWN"], no_new_privs=True, seccomp_filtered=True)
    assert differences(spec, faithful, good, profile) == []
    bad = KernelView(bounding_caps=["CHOWN", "SYS_ADMIN"], no_new_privs=False, seccomp_filtered=False)
    assert differences(spec, faithful, bad, profile) == [
        "kernel: NoNewPrivs is 0 for the container's process",
        "kernel: capability bounding set ['CHOWN', 'SYS_ADMIN'], policy allows ['CHOWN']",
        "kernel: no seccomp filter on the container's process"]


class _OpaqueError(ContainerError):
    """An error whose message does not come from its args (rewriting args cannot reach it)."""

    def __init__(self, detail: str) -> None:
        super().__init__("opaque")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def test_an_error_whose_str_ignores_its_args_still_leaves_redacted():
    runner, fake, _, _, _ = make()
    fake.fail["init"] = _OpaqueError(f"init said {SECRET}")
    with pytest.raises(CleanroomError) as info:
        runner.run(runner.request("img", ["/bin/true"]))
    assert SECRET not in str(info.value) and "[REDACTED:secret:pw]" in str(info.value)
    assert info.value.__suppress_context__  # the original is never shown beside it
    assert fake.containers == {} and pending_cleanups() == []


def test_recent_events_keep_only_redacted_data():
    redactor = Redactor()
    redactor.add_secret(SECRET, "pw")
    events = RecentEvents(redactor.redact)
    events.remember("limit.breach", {"sandbox": "s", "detail": f"argv had {SECRET}", "nested": [{"v": SECRET}]})
    shown = repr(events.security()) + repr(events.since(0)) + "".join(events.lines())
    assert SECRET not in shown and "[REDACTED:secret:pw]" in events.security()[0]["nested"][0]["v"]
