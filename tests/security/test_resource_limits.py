"""Limits written in a policy hold, on real rootless Podman and real cgroups, and the
user is told precisely which one was hit. Each test checks the host is unharmed after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer, ResourceLimitExceeded
from sandbox.confine import leftover_cgroups
from sandbox.confine.cgroups import detect_version, make_driver, subtree_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, REPO, SERVICES, cleanroom_cli, containers_with_label  # noqa: E402

MiB = 1024 * 1024


def env_for(tmp_path, podman_url, toml: str) -> CleanroomEnvironment:
    return CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path)


@pytest.fixture(autouse=True)
def host_unharmed(podman_url, tmp_path):
    """After every test: a sandbox still runs, confined, and no cgroup made by this
    process or its children (the CLI, a killed engine) is left. Other runs' live
    environments on this host are not ours and are not counted."""
    assert detect_version() in ("v1", "v2")
    yield
    with CleanroomEnvironment(CleanroomConfig.default(), url=podman_url, audit_dir=tmp_path / "after") as env:
        r = env.run(BUSYBOX, ["/bin/echo", "still fine"])
        assert r.exit_code == 0 and r.stdout == "still fine\n" and not r.breaches
        assert r.usage.peak_memory_bytes is not None  # confinement still works
    assert leftover_cgroups(os.getpid()) == []


def test_memory_bomb_is_killed_and_reported_as_memory(tmp_path, podman_url):
    with env_for(tmp_path, podman_url, '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "64MiB"\n') as env:
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(SERVICES, ["python3", "-c", "x = bytearray(200 << 20); print('survived')"], check=True)
        err = info.value
        assert err.limit == "memory" and err.limit_value == 64 * MiB
        assert 0.9 * 64 * MiB <= err.observed <= 64 * MiB * 1.05  # peak near the limit
        assert err.sandbox
        r = env.run(SERVICES, ["python3", "-c", "x = bytearray(200 << 20); print('survived')"])
        assert r.exit_code == 137 and "survived" not in r.stdout and r.oom_killed
        assert env.run(BUSYBOX, ["/bin/echo", "fine"]).stdout == "fine\n"


def test_fork_bomb_is_contained_and_reported_as_pids(tmp_path, podman_url):
    with env_for(tmp_path, podman_url, "[cleanroom.resource_limits.sandbox]\npids_limit = 64\n") as env:
        bomb = "i=0; while [ $i -lt 300 ]; do sleep 10 & i=$((i+1)); done 2>/dev/null; echo done"
        r = env.run(BUSYBOX, ["/bin/sh", "-c", bomb], timeout=30)
        assert [b.limit for b in r.breaches] == ["pids"]
        assert r.usage.peak_pids <= 64 and r.usage.pids_limit_hits >= 1
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(BUSYBOX, ["/bin/sh", "-c", bomb], timeout=30, check=True)
        assert info.value.limit == "pids" and info.value.limit_value == 64
        nxt = env.run(BUSYBOX, ["/bin/sh", "-c", "echo normal"])
        assert nxt.exit_code == 0 and nxt.stdout == "normal\n" and not nxt.breaches


def test_cpu_hog_under_half_a_core(tmp_path, podman_url):
    with env_for(tmp_path, podman_url, "[cleanroom.resource_limits.sandbox]\ncpu_percent = 50.0\n") as env:
        hog = ("end=$(($(date +%s) + 3)); for n in 1 2; do (while [ $(date +%s) -lt $end ]; do :; done) & done; "
               "wait; echo spun")
        r = env.run(BUSYBOX, ["/bin/sh", "-c", hog])
        assert r.stdout == "spun\n"
        assert r.usage.cpu_limit_percent == 50.0
        # Two busy loops could use 2 cores; the quota holds them to half of one.
        assert r.usage.cpu_seconds <= 0.55 * r.duration_seconds, (r.usage.cpu_seconds, r.duration_seconds)
        assert r.usage.cpu_seconds >= 0.3 * 3  # it did spin, the measure is real


def test_container_count_refuses_the_third_before_creating_it(tmp_path, podman_url, podman_api):
    with env_for(tmp_path, podman_url,
                 '[cleanroom.resource_limits]\nmax_container_count = 2\non_container_limit = "refuse"\n') as env:
        a = GenericContainer(BUSYBOX, ["/bin/sleep", "60"]).start(env)
        b = GenericContainer(BUSYBOX, ["/bin/sleep", "60"]).start(env)
        before = len(containers_with_label(podman_api, f"io.cleanroom.environment={env.id}"))
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(BUSYBOX, ["/bin/echo", "third"])
        assert info.value.limit == "containers" and info.value.limit_value == 2
        assert len(containers_with_label(podman_api, f"io.cleanroom.environment={env.id}")) == before == 2
        report = env.check_resource_limits()
        assert report["containers"] == {"used": 2, "limit": 2}
        a.stop()
        assert env.run(BUSYBOX, ["/bin/echo", "now"]).stdout == "now\n"
        b.stop()


def test_sixteen_concurrent_sandboxes_under_a_limit_of_four_all_run_never_more_than_four(tmp_path, podman_url,
                                                                                       podman_api):
    with env_for(tmp_path, podman_url, "[cleanroom.resource_limits]\nmax_container_count = 4\n") as env:
        label = f"io.cleanroom.environment={env.id}"
        seen, stop = [], threading.Event()

        def watch() -> None:  # Podman's own count of this environment's containers
            while not stop.is_set():
                seen.append(len(containers_with_label(podman_api, label)))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        results: list = []
        errors: list = []

        def one(i: int) -> None:
            try:
                results.append(env.run(BUSYBOX, ["/bin/sh", "-c", f"sleep 0.3; echo {i}"]))
            except Exception as exc:  # collected: every one must succeed
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        stop.set()
        watcher.join()
    assert errors == []
    assert sorted(int(r.stdout) for r in results) == list(range(16))
    assert max(seen) <= 4 and max(seen) >= 2  # the limit held, and they did run side by side


def test_metrics_report_environment_peaks(tmp_path, podman_url):
    with env_for(tmp_path, podman_url, "[cleanroom.performance_monitoring]\nmetrics_interval = 0.1\n") as env:
        env.run(SERVICES, ["python3", "-c", "x = bytearray(40 << 20); import time; time.sleep(0.5)"])
        usage = env.get_metrics()["resource_usage"]
        assert usage["peak_memory_usage_bytes"] >= 40 * MiB
        assert usage["cpu_seconds"] > 0


def test_killed_engine_leaves_cgroups_that_prune_removes(tmp_path, podman_api):
    code = (
        "import sys\n"
        "from sandbox import CleanroomConfig, CleanroomEnvironment\n"
        f"with CleanroomEnvironment(CleanroomConfig(), audit_dir={str(tmp_path)!r}) as env:\n"
        "    print(env.id, flush=True)\n"
        "    env.run('" + BUSYBOX + "', ['/bin/sh', '-c', 'echo started; sleep 60'],\n"
        "            on_stdout=lambda t: (sys.stdout.write(t), sys.stdout.flush()))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        env_id = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "started"
        driver = make_driver()
        assert env_id in driver.children() and len(driver.children(env_id)) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert env_id in driver.children()  # SIGKILL cannot clean up
        pruned = cleanroom_cli("prune")
        assert pruned.returncode == 0, pruned.stderr
        assert f"removed cgroup {env_id}" in pruned.stdout
        assert env_id not in driver.children()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_summary_reports_usage_and_limits():
    proc = cleanroom_cli("run", "--policy", str(REPO / "policies" / "strict.toml"), BUSYBOX, "--", "/bin/echo", "x")
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    assert "peak mem" in summary and "/ 256.0 MiB" in summary
    assert "cpu " in summary and "limit 100%" in summary
    assert "pids" in summary and "/ 128" in summary


def test_io_weight_is_written_and_read_back_with_the_scheduler(tmp_path, podman_url):
    import json

    with env_for(tmp_path, podman_url, "[cleanroom.resource_limits.sandbox]\nio_weight = 200\n") as env:
        env.run(BUSYBOX, ["/bin/true"])
        records = [json.loads(x) for x in Path(env.audit_path).read_text().splitlines()]
    limits = [r for r in records if r["event"] == "sandbox.confined"][0]["data"]["cgroup"]["limits"]
    weight = limits.get("blkio.weight", limits.get("blkio.bfq.weight"))
    # Either the kernel took the weight, or the read-back says plainly why not.
    assert weight == 200 or isinstance(weight, str), limits
    if weight == 200:
        assert limits["io_schedulers"]  # which scheduler decides whether it matters


ESCAPE = r"""
me=$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)
echo $$ > /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null && echo MOVED
echo $$ > /sys/fs/cgroup/memory/cleanroom.cleanroom/cgroup.procs 2>/dev/null && echo MOVED
echo -1 > /sys/fs/cgroup/memory$me/memory.limit_in_bytes 2>/dev/null && echo RAISED
mkdir -p /tmp/m
for flags in "-U -C -m" "-U -r -C -m"; do
  unshare $flags sh -c 'mount -t cgroup -o memory none /tmp/m && echo -1 > /tmp/m/memory.limit_in_bytes \
    && echo REMOUNTED' 2>/dev/null
done
grep ':memory:' /proc/self/cgroup
python3 -c 'x = bytearray(200 << 20); print("survived")'
"""


def test_a_sandbox_cannot_leave_or_loosen_its_cgroup(tmp_path, podman_url):
    # The sandbox's root is our uid outside, which owns the delegated subtree. What
    # stops it: its cgroup mount is read-only (and shows the Podman service's old
    # cgroup, not ours), and a nested user+cgroup namespace may not mount cgroupfs.
    with env_for(tmp_path, podman_url, '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "64MiB"\n') as env:
        r = env.run(SERVICES, ["/bin/sh", "-c", ESCAPE])
    assert not {"MOVED", "RAISED", "REMOUNTED", "survived"} & set(r.stdout.split()), r.stdout
    assert r.stdout.split()[0].endswith(f":memory:/{subtree_name()}/{env.id}/{r.sandbox}"), r.stdout
    assert r.oom_killed and [b.limit for b in r.breaches] == ["memory"]  # the limit still held


def test_the_environment_memory_budget_binds_its_sandboxes_and_is_named(tmp_path, podman_url):
    toml = '[cleanroom.resource_limits]\nmax_memory_usage_bytes = "96MiB"\n'
    with env_for(tmp_path, podman_url, toml) as env:
        with pytest.raises(ResourceLimitExceeded) as info:
            # The sandbox's own limit is far above the budget: the parent cgroup must hold it.
            env.run(SERVICES, ["python3", "-c", "x = bytearray(200 << 20); print('survived')"],
                    limits={"memory_bytes": 512 * MiB}, check=True)
        err = info.value
        assert err.limit == "memory" and err.limit_value == 96 * MiB
        assert "environment's memory budget" in str(err) and err.observed <= 96 * MiB
        assert env.check_resource_limits()["memory_bytes"]["limit"] == 96 * MiB
