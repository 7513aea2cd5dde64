"""The warm pool's bookkeeping, driven through the fake Podman API: members are made in
the background, handed out once, removed after their command, kept per set of
options, and all removed at close. (Confinement, network and cleanup on signals are
proven on real Podman in tests/integration/test_pool.py.)"""

from __future__ import annotations

import time

import pytest
from fake_podman import decode_request
from test_engine_runner import SECRET, make, pending_cleanups

from sandbox.engine.helper.build import HELPER_TARGET, command_request
from sandbox.engine.podman.api import ImageConfig
from sandbox.engine.pool import SandboxPool, pool_key
from sandbox.engine.teardown.ownership import LABEL_POOL
from sandbox.errors import ContainerError, TimeoutExceeded


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def pooled():
    runner, fake, log, audit, confiner = make()
    pool = SandboxPool(runner, 2)
    runner.pool = pool
    yield runner, fake, audit, pool
    pool.close()
    assert pending_cleanups() == []


def _events(audit, name: str) -> list[str]:
    return [e for e, d in audit if d.get("sandbox") == name]


def test_the_first_run_is_cold_then_members_wait_and_each_is_used_once(pooled):
    runner, fake, audit, pool = pooled
    cold = runner.run(runner.request("img", ["/bin/echo", "one"]))
    assert cold.stdout == "/bin/echo one\n"
    assert "pool.taken" not in [e for e, _ in audit]
    _wait(lambda: pool.idle() == 2)
    used = set()
    for i in range(4):
        result = runner.run(runner.request("img", ["/bin/echo", str(i)]))
        assert result.stdout == f"/bin/echo {i}\n" and result.exit_code == 0
        assert "pool.taken" in _events(audit, result.sandbox)
        assert result.sandbox not in used, "a pool member ran a second command"
        used.add(result.sandbox)
        _wait(lambda: pool.idle() == 2)  # refilled in the background
    # Every used member is removed (in the background) and its removal audited once.
    _wait(lambda: all(_events(audit, name).count("sandbox.removed") == 1 for name in used))
    live = {c.spec["name"] for c in fake.containers.values()}
    assert not used & live


def test_a_member_is_made_confined_and_waits_in_the_helper_for_its_command(pooled):
    runner, fake, audit, pool = pooled
    pool.want(runner.request("img"))
    _wait(lambda: pool.idle() == 2)
    member = next(iter(fake.containers.values()))
    assert member.spec["entrypoint"] == [HELPER_TARGET]
    assert member.spec["command"][0] == "-R"
    assert member.spec["stdin"] is True
    assert LABEL_POOL in member.spec["labels"]
    assert any(m["destination"] == HELPER_TARGET and "ro" in m["options"] for m in member.spec["mounts"])
    assert member.status == "running"  # started: only the command is missing
    name = member.spec["name"]
    # Made like any sandbox (and audited so); "started" is recorded when a run takes it.
    assert _events(audit, name) == ["sandbox.created"]


def test_the_command_its_environment_and_stdin_go_down_the_members_stdin():
    runner, fake, log, audit, _ = make()
    fake.images["img"] = ImageConfig(id="sha256:x", entrypoint=["/entry"], cmd=["default"])
    pool = SandboxPool(runner, 1)
    runner.pool = pool
    try:
        pool.want(runner.request("img"))
        _wait(lambda: pool.idle() == 1)
        cid = next(iter(fake.containers))
        result = runner.run(runner.request("img", ["arg"], env={"TOKEN": SECRET}, stdin=True), stdin=b"input")
        # The image's entrypoint first, as a cold run; the secret in env reaches the command
        # but the echoed argv shows only what the fake's program was given.
        assert result.stdout == "/entry arg\n"
        assert fake.stdin_fed[cid] == b"input"
        assert "attach_held" in log
    finally:
        pool.close()


def test_runs_with_other_options_get_their_own_members_and_env_or_command_do_not_matter():
    runner, *_ = make()
    a = runner.request("img", ["x"], env={"A": "1"})
    b = runner.request("img", ["y"], env={"B": "2"}, stdin=True)
    assert pool_key(a) == pool_key(b)
    assert pool_key(a) != pool_key(runner.request("img", ["x"], limits={"memory_bytes": 1 << 26}))
    assert pool_key(a) != pool_key(runner.request("other", ["x"]))
    assert pool_key(a) != pool_key(runner.request("img", ["x"], workdir="/srv"))


def test_no_member_is_made_while_the_budget_has_no_room(pooled):
    runner, fake, audit, _ = pooled
    pool = SandboxPool(runner, 3, room=lambda: False)
    try:
        pool.want(runner.request("img"))
        time.sleep(0.3)
        assert pool.idle() == 0 and pool.made == 0
    finally:
        pool.close()


def test_close_removes_every_waiting_member_and_stops_filling(pooled):
    runner, fake, audit, pool = pooled
    pool.want(runner.request("img"))
    _wait(lambda: pool.idle() == 2)
    pool.close()
    assert fake.containers == {}
    assert pool.take(runner.request("img", ["/bin/true"])) is None


def test_an_option_set_that_cannot_be_made_is_dropped_and_audited():
    runner, fake, log, audit, _ = make()
    fake.fail["create"] = ContainerError("no such image")
    pool = SandboxPool(runner, 2)
    try:
        pool.want(runner.request("img"))
        _wait(lambda: "pool.fill_failed" in [e for e, _ in audit])
        fake.fail.clear()
        time.sleep(0.2)
        assert pool.idle() == 0  # not retried in a loop
    finally:
        pool.close()


def test_requests_with_their_own_entrypoint_or_services_are_never_pooled(pooled):
    runner, fake, audit, pool = pooled
    assert pool.take(runner.request("img", ["x"], entrypoint=["/bin/sh"])) is None
    assert pool.take(runner.request("img", ["x"], kind="service")) is None


def test_the_request_encoding_is_what_the_helper_parses():
    data = command_request(["/bin/sh", "-c", "echo $A"], {"A": "b=c"})
    assert decode_request(data) == ["/bin/sh", "-c", "echo $A"]
    assert data.endswith(b"A=b=c\0")
    with pytest.raises(ContainerError):
        command_request(["a\0b"])
    with pytest.raises(ContainerError):
        command_request([])


def test_a_timed_out_pooled_run_kills_that_member_only(pooled):
    runner, fake, audit, pool = pooled
    fake.program = lambda argv: (None, 0) if argv and argv[0] == "sleep" else ([], 0)
    pool.want(runner.request("img"))
    _wait(lambda: pool.idle() == 2)
    with pytest.raises(TimeoutExceeded) as info:
        runner.run(runner.request("img", ["sleep"]), timeout=0.2)
    assert info.value.result.sandbox in [d["sandbox"] for e, d in audit if e == "pool.taken"]
    assert fake.log.count("kill") == 1
    _wait(lambda: pool.idle() == 2)


def test_a_member_killed_while_it_waited_is_skipped_and_removed(pooled):
    runner, fake, audit, pool = pooled
    pool.want(runner.request("img"))
    _wait(lambda: pool.idle() == 2)
    dead = next(iter(fake.containers.values()))
    fake.kill_container(dead.id)
    result = runner.run(runner.request("img", ["/bin/echo", "ok"]))
    assert result.stdout == "/bin/echo ok\n" and result.sandbox != dead.spec["name"]
    assert ("pool.member_lost", {"sandbox": dead.spec["name"]}) in audit
    runner.drain()
    assert dead.id not in fake.containers


def test_members_made_before_the_service_restarted_are_not_used(pooled):
    runner, fake, audit, pool = pooled
    pool.want(runner.request("img"))
    _wait(lambda: pool.idle() == 2)
    fake.restarts = 1  # their attach streams died with the old service
    runner.run(runner.request("img", ["/bin/true"]))
    lost = [d["sandbox"] for e, d in audit if e == "pool.member_lost"]
    assert len(lost) == 2  # both skipped: the run went cold, new members are made from now on
    _wait(lambda: pool.idle() == 2)
