"""The warm pool on real rootless Podman: a pooled sandbox keeps every guarantee of a
cold one (limits, network rules, redaction, audit, verdicts), is never reused, is
refilled in the background within the container budget, and is cleaned up on close,
SIGTERM and (through prune) SIGKILL. Speed is printed by `make bench`, not tested here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from podman_helpers import BUSYBOX, REPO, SERVICES, cleanroom_cli, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, TimeoutExceeded
from sandbox.confine import leftover_cgroups
from sandbox.engine.teardown.ownership import LABEL_ENV, LABEL_OWNER_PID, LABEL_POOL

SECRET = "pool-secret-value-0123456789"
MiB = 1024 * 1024
POOLED = (REPO / "policies" / "strict.toml").read_text() + "\n[cleanroom.pool]\nsize = 2\n"
USER_1000 = "localhost/cleanroom/test-pool-user1000:latest"


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _audit(env) -> list[dict]:
    return [json.loads(line) for line in env.audit_path.read_text().splitlines() if line.strip()]


def _taken(env) -> list[str]:
    return [r["data"]["sandbox"] for r in _audit(env) if r["event"] == "pool.taken"]


def _pool_members(api, env) -> list[dict]:
    return [c for c in containers_with_label(api, f"{LABEL_ENV}={env.id}") if LABEL_POOL in c["Labels"]]


@pytest.fixture
def env(tmp_path, podman_url):
    config = CleanroomConfig.from_toml(POOLED)
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        env.add_secret(SECRET, "pool")
        yield env


def _warm(env, image: str = BUSYBOX, **options) -> None:
    """Ask once (a cold run), then wait until members for those options are waiting."""
    env.run(image, ["/bin/true"], **options)
    _wait(lambda: env._runner.pool.idle() == 2)


def test_a_pooled_run_is_a_new_members_first_and_only_program_and_the_member_goes(env, podman_api):
    _warm(env)
    names = set()
    for i in range(3):
        r = env.run(BUSYBOX, ["/bin/sh", "-c", f"echo $$ run{i}; cat /proc/1/cmdline | tr '\\0' ' '"])
        assert r.exit_code == 0, r.stderr
        pid, label = r.stdout.splitlines()[0].split()
        assert (pid, label) == ("1", f"run{i}")  # the command is the sandbox's first process
        assert "helper" not in r.stdout.splitlines()[1]  # the waiting helper exec'd it: nothing else runs
        assert r.sandbox in _taken(env) and r.sandbox not in names
        names.add(r.sandbox)
        _wait(lambda: env._runner.pool.idle() == 2)  # refilled in the background
    live = {c["Names"][0] for c in containers_with_label(podman_api, f"{LABEL_ENV}={env.id}")}
    assert not names & live, "a used member was kept"
    removed = [r["data"]["sandbox"] for r in _audit(env) if r["event"] == "sandbox.removed"]
    assert all(removed.count(n) == 1 for n in names)


def test_pooled_runs_are_confined_filtered_and_redacted_like_cold_ones(env):
    _warm(env)
    script = ("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /proc/net/dev | tail -n +3 | cut -d: -f1 "
              "| tr -d ' '; echo \"[$TOKEN]\"; cat; exit 7")
    r = env.run(BUSYBOX, ["/bin/sh", "-c", script], env={"TOKEN": SECRET}, stdin=b"from stdin\n")
    assert r.sandbox in _taken(env)
    assert r.exit_code == 7 and r.verdict == "failed"
    assert "CapEff:\t0000000000000000" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert r.stdout.split("NoNewPrivs:\t1\n")[1].splitlines()[0] == "lo"  # strict: no network but loopback
    assert SECRET not in r.stdout and "[REDACTED:secret:pool]" in r.stdout
    assert "from stdin" in r.stdout
    assert r.usage.peak_memory_bytes is not None and r.usage.memory_limit_bytes == 256 * MiB
    assert SECRET not in env.audit_path.read_text()


def test_a_pooled_runs_phases_and_time_series_are_its_own(tmp_path, podman_url):
    toml = POOLED.replace("[cleanroom.performance_monitoring]\n", "[cleanroom.performance_monitoring]\n"
                          "enable_profiling = true\n")
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        _warm(env)
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "sleep 1.2"])
        assert r.sandbox in _taken(env)
        # Made ahead: create/init/confine were the pool's; from the hand-over on, the run's own.
        assert {"start", "run", "wait", "remove"} <= set(r.phases) and r.phases["run"] >= 1.0
        assert len(r.timeseries) >= 2  # sampled while it ran (metrics_interval 0.5 s)


def test_a_member_killed_while_it_waited_is_not_handed_a_command(env, podman_api):
    _warm(env)
    victim = _pool_members(podman_api, env)[0]
    podman_api.post(f"/containers/{victim['Id']}/kill", params={"signal": "SIGKILL"})
    _wait(lambda: not any(c["Id"] == victim["Id"] and c["State"] == "running"
                          for c in _pool_members(podman_api, env)))
    for _ in range(3):  # whichever member comes first, every run works
        r = env.run(BUSYBOX, ["/bin/echo", "fine"])
        assert r.exit_code == 0 and r.stdout == "fine\n"
    name = victim["Names"][0]
    assert name in [x["data"]["sandbox"] for x in _audit(env) if x["event"] == "pool.member_lost"]
    assert name not in _taken(env)


def test_a_limit_hit_in_a_pooled_sandbox_is_its_breach(env):
    limits = {"memory_bytes": 64 * MiB}
    env.run(SERVICES, ["/bin/true"], limits=limits)
    _wait(lambda: env._runner.pool.idle() == 2)
    r = env.run(SERVICES, ["python3", "-c", "x = bytearray(200 << 20); print('survived')"], limits=limits)
    assert r.sandbox in _taken(env)
    assert r.exit_code == 137 and r.oom_killed and "survived" not in r.stdout
    assert [b.limit for b in r.breaches] == ["memory"]


def test_a_pooled_run_past_its_timeout_is_killed_and_reported(env):
    _warm(env)
    with pytest.raises(TimeoutExceeded) as info:
        env.run(BUSYBOX, ["/bin/sh", "-c", "echo started; sleep 30"], timeout=1)
    assert info.value.result.sandbox in _taken(env)
    assert info.value.result.stdout == "started\n"


def test_an_image_with_a_non_root_user_runs_pooled_as_that_user_confined(env, tmp_path):
    (tmp_path / "Containerfile").write_text(f"FROM {BUSYBOX}\nUSER 1000\n")
    subprocess.run(["podman", "build", "-q", "-t", USER_1000, str(tmp_path)], check=True, capture_output=True,
                   timeout=120)
    try:
        _warm(env, USER_1000)
        r = env.run(USER_1000, ["/bin/sh", "-c", "id -u; grep -c cleanroom /proc/self/cgroup"])
        assert r.sandbox in _taken(env)
        uid, confined = r.stdout.split()
        assert uid == "1000" and int(confined) >= 1
    finally:
        env._runner.pool.close()  # before the image goes
        subprocess.run(["podman", "rmi", "-f", USER_1000], capture_output=True, timeout=60)


def test_the_pool_stays_within_the_container_budget(tmp_path, podman_url, podman_api):
    toml = POOLED.replace("size = 2", "size = 4").replace("max_container_count = 4",
                                                                  'max_container_count = 3\non_container_limit = "refuse"')
    assert "max_container_count = 3" in toml
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        env.run(BUSYBOX, ["/bin/true"])
        _wait(lambda: env._runner.pool.idle() == 2)
        time.sleep(1.0)
        # Members up to one place short of the budget: never the four asked for.
        assert env._runner.pool.idle() == 2 and len(_pool_members(podman_api, env)) == 2
        # That place is the caller's: a run the members cannot serve (other limits) gets it
        # (with "refuse", a full budget would raise ResourceLimitExceeded instead).
        r = env.run(BUSYBOX, ["/bin/echo", "fits"], limits={"memory_bytes": 32 * MiB})
        assert r.stdout == "fits\n" and r.sandbox not in _taken(env)


def test_close_removes_waiting_members_and_their_cgroups(tmp_path, podman_url, podman_api):
    with CleanroomEnvironment(CleanroomConfig.from_toml(POOLED + 'images = ["' + BUSYBOX + '"]\n'),
                              url=podman_url, audit_dir=tmp_path) as env:
        # `images` fills at open, before any run asks.
        _wait(lambda: env._runner.pool.idle() == 2)
        assert len(_pool_members(podman_api, env)) == 2
    assert _pool_members(podman_api, env) == []
    assert leftover_cgroups(os.getpid()) == []


_HOLDER = (
    "import sys, time\n"
    "from sandbox import CleanroomConfig, CleanroomEnvironment\n"
    "cfg = CleanroomConfig.from_toml(sys.argv[1])\n"
    "with CleanroomEnvironment(cfg, audit_dir=sys.argv[2]) as env:\n"
    "    env.run(sys.argv[3], ['/bin/true'])\n"
    "    while env._runner.pool.idle() < 2: time.sleep(0.05)\n"
    "    print('ready', flush=True)\n"
    "    time.sleep(120)\n"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_waiting_members_go_on_sigterm_and_prune_finds_them_after_sigkill(sig, tmp_path, podman_api):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, POOLED, str(tmp_path), BUSYBOX], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    mine = f"{LABEL_OWNER_PID}={proc.pid}"
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        members = containers_with_label(podman_api, mine)
        assert len(members) == 2 and all(LABEL_POOL in c["Labels"] for c in members)
        proc.send_signal(sig)
        proc.wait(timeout=20)
        if sig == signal.SIGKILL:
            assert len(containers_with_label(podman_api, mine)) == 2  # nothing could clean up
            pruned = cleanroom_cli("prune")
            assert pruned.returncode == 0, pruned.stderr
        assert containers_with_label(podman_api, mine) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
