"""CgroupConfiner's decisions against a fake driver and stand-in policy objects:
the container count, the limits a sandbox gets, what a failed placement does, how
counters become breaches, and what prune may remove. (Real enforcement is proven in
tests/security/test_resource_limits.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from types import SimpleNamespace

import psutil
import pytest

import sandbox.confine as confine
from sandbox.confine.cgroups import CgroupError
from sandbox.confine.limits import CgroupConfiner
from sandbox.confine.owners import owner_alive, records_dir
from sandbox.engine.types import CreateRequest, SandboxHandle
from sandbox.errors import ContainerError, ResourceLimitExceeded

MiB = 1 << 20


class FakeDriver:
    version = "fake"

    def __init__(self) -> None:
        self.reads: dict[str, int] = {}
        self.dirs: dict[str, dict] = {}
        self.usage: dict[str, dict[str, int]] = {}
        self.procs: dict[str, list[int]] = {}
        self.fail_place = False

    def available(self) -> bool:
        return True

    def make(self, rel):
        self.dirs.setdefault(rel, {})

    def set_limits(self, rel, **limits):
        self.dirs[rel].update({k: v for k, v in limits.items() if v is not None})
        return dict(self.dirs[rel])

    def place(self, rel, pid):
        if self.fail_place:
            raise CgroupError(f"cannot move pid {pid} into {rel}: Permission denied")
        self.procs[rel] = [pid]

    def read_usage(self, rel):
        self.reads[rel] = self.reads.get(rel, 0) + 1
        return dict(self.usage.get(rel, {}))

    def tasks(self, rel):
        return list(self.procs.get(rel, []))

    def remove(self, rel, timeout=5.0):
        if self.procs.get(rel) or any(k.startswith(f"{rel}/") for k in self.dirs):
            raise CgroupError(f"cannot remove {rel}: Device or resource busy")  # as rmdir on cgroupfs
        self.dirs.pop(rel, None)

    def children(self, rel=""):
        depth = rel.count("/") + 1 if rel else 0
        prefix = f"{rel}/" if rel else ""
        return sorted({k.split("/")[depth] for k in self.dirs if k.startswith(prefix) and k.count("/") >= depth})


def policy(**over) -> SimpleNamespace:
    sb = SimpleNamespace(memory_bytes=512 * MiB, memory_swap_bytes=None, cpu_percent=100.0, pids_limit=512,
                         io_weight=None)
    svc = SimpleNamespace(memory_bytes=over.get("group_memory", 256 * MiB), cpu_percent=None,
                          pids_limit=over.get("group_pids", 300), service_memory_bytes=over.get("svc_memory", 96 * MiB),
                          service_pids_limit=64)
    rl = SimpleNamespace(max_container_count=over.get("count", 10), max_memory_usage_bytes=2048 * MiB,
                         max_cpu_usage_percent=50.0, enable_resource_monitoring=over.get("monitoring", True),
                         on_container_limit=over.get("on_limit", "refuse"),
                         max_network_bandwidth_bytes_per_sec=None, sandbox=sb, services=svc)
    return SimpleNamespace(resource_limits=rl, performance_monitoring=SimpleNamespace(metrics_interval=10.0),
                           container_startup_timeout=over.get("startup", 2.0))


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))


@pytest.fixture
def made():
    confiners = []

    def make(**over):
        audit = []
        driver = FakeDriver()
        c = CgroupConfiner(policy(**over), driver, environment_id="env-test",
                           audit=lambda event, level, **data: audit.append((event, data)))
        confiners.append(c)
        return c, driver, audit

    yield make
    for c in confiners:
        c.close()


def request(name: str) -> CreateRequest:
    return CreateRequest(image="img", name=name)


def handle(name: str, limits: dict | None = None) -> SandboxHandle:
    return SandboxHandle(id=f"id-{name}", name=name, pid=4242, limits=limits or {})


def test_environment_budget_is_the_host_share_and_memory(made):
    c, driver, _ = made()
    assert driver.dirs["env-test"] == {"memory": 2048 * MiB, "cpu_percent": 50.0 * (os.cpu_count() or 1)}
    assert owner_alive("env-test")


def test_third_sandbox_is_refused_before_creation_counting_reservations(made):
    c, _, _ = made(count=2)
    c.before_create(request("a"))
    c.before_create(request("b"))  # reserved, not yet initialised: still counts
    with pytest.raises(ResourceLimitExceeded) as info:
        c.before_create(request("c"))
    assert (info.value.limit, info.value.limit_value, info.value.observed) == ("containers", 2, 3)
    c.create_failed(request("b"))  # a failed create gives its place back
    c.before_create(request("c"))


def test_per_call_limits_override_the_policy_and_unknown_ones_are_refused(made):
    c, driver, _ = made()
    c.before_create(request("s"))
    h = handle("s", {"memory_bytes": 64 * MiB, "pids_limit": 64})
    c.after_init(h)
    assert driver.dirs["env-test/s"] == {"memory": 64 * MiB, "cpu_percent": 100.0, "pids": 64}
    assert driver.procs["env-test/s"] == [4242]
    assert (h.usage.memory_limit_bytes, h.usage.pids_limit, h.usage.cpu_limit_percent) == (64 * MiB, 64, 100.0)
    assert h.facts["cgroup"]["path"] == "env-test/s"
    with pytest.raises(ContainerError, match="unknown per-call limit"):
        c.after_init(handle("t", {"memroy_bytes": 1}))


def test_failed_placement_refuses_the_sandbox_and_removes_its_cgroup(made):
    c, driver, _ = made()
    driver.fail_place = True
    with pytest.raises(ContainerError, match="not started.*Permission denied"):
        c.after_init(handle("s"))
    assert "env-test/s" not in driver.dirs
    assert c.report()["containers"]["used"] == 0


def test_counters_become_breaches_and_the_cgroup_goes_with_the_sandbox(made):
    c, driver, audit = made()
    h = handle("s", {"memory_bytes": 64 * MiB, "pids_limit": 64})
    c.after_init(h)
    driver.usage["env-test/s"] = {"peak_memory": 64 * MiB, "cpu_ns": 1_500_000_000, "pids": 0, "oom_kills": 1,
                                  "pids_limit_hits": 3}
    driver.procs["env-test/s"] = []  # the container's processes are gone
    c.after_exit(h)
    assert h.usage.cpu_seconds == 1.5 and h.usage.peak_memory_bytes == 64 * MiB
    assert [(b.limit, b.limit_value) for b in h.breaches] == [("memory", 64 * MiB), ("pids", 64)]
    # pids.max refused forks, so the count stood at the limit then, whatever sampling saw.
    assert h.usage.peak_pids == 64 and h.breaches[1].observed == 64
    assert [e for e, _ in audit] == ["limit.breach", "limit.breach"]
    c.release(h)
    assert "env-test/s" not in driver.dirs


def test_close_keeps_a_cgroup_that_still_has_processes(made):
    c, driver, _ = made()
    c.after_init(handle("singleton"))
    c.close()
    assert "env-test/singleton" in driver.dirs and "env-test" in driver.dirs
    assert (records_dir() / "env-test.json").exists()  # prune needs to know who made it


def test_prune_takes_orphans_only(monkeypatch):
    driver = FakeDriver()
    monkeypatch.setattr(confine, "make_driver", lambda: driver)
    records_dir().mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    for env_id, pid in (("env-dead", dead.pid), ("env-live", os.getpid()), ("env-kept", dead.pid),
                        ("env-gone", dead.pid)):
        start = 0.0 if pid == dead.pid else psutil.Process(pid).create_time()
        (records_dir() / f"{env_id}.json").write_text(json.dumps({"pid": pid, "ppid": 1, "start": round(start, 2)}))
    for rel in ("env-dead", "env-dead/sb", "env-live", "env-live/sb", "env-kept", "env-kept/singleton"):
        driver.make(rel)
    driver.procs["env-kept/singleton"] = [99]  # a kept singleton still runs in there
    removed = confine.prune_cgroups()
    assert removed == ["env-dead/sb", "env-dead"]
    assert {"env-live", "env-kept"} <= set(driver.dirs)
    # The record of an environment whose cgroup is gone goes too; the others stay.
    assert sorted(p.stem for p in records_dir().glob("*.json")) == ["env-kept", "env-live"]
    assert "env-live/sb" in confine.prune_cgroups(include_live=True)


@pytest.mark.parametrize("failcnt, peak, expect", [
    (3, 30 * MiB, ("sandbox's memory limit", 64 * MiB)),  # its own limit refused a charge
    (0, 30 * MiB, ("environment's memory budget", 2048 * MiB)),  # only the parent's did
    (None, 64 * MiB, ("sandbox's memory limit", 64 * MiB)),  # no counter: judged by the peak
])
def test_an_oom_kill_names_the_limit_that_ran_out(made, failcnt, peak, expect):
    c, driver, _ = made()
    h = handle("s", {"memory_bytes": 64 * MiB})
    c.after_init(h)
    usage = {"peak_memory": peak, "oom_kills": 1}
    if failcnt is not None:
        usage["memory_failcnt"] = failcnt
    driver.usage["env-test/s"] = usage
    driver.usage["env-test"] = {"peak_memory": 2048 * MiB}
    c.after_exit(h)
    (b,) = h.breaches
    assert b.limit == "memory" and expect[0] in b.detail and b.limit_value == expect[1]
    c.release(h)


@pytest.mark.parametrize(("monitoring", "sampled"), [(True, True), (False, False)])
def test_resource_monitoring_samples_running_sandboxes_within_a_second(made, monitoring, sampled):
    # metrics_interval is 10 s: only the monitoring switch makes the sampler look sooner.
    c, driver, _ = made(monitoring=monitoring)
    c.before_create(request("live"))
    c.after_init(handle("live"))
    before = driver.reads.get("env-test/live", 0)
    time.sleep(1.3)
    assert (driver.reads.get("env-test/live", 0) > before) is sampled
    c.release(handle("live"))


def test_at_the_limit_a_new_sandbox_waits_for_a_place_and_takes_the_freed_one(made):
    c, _, _ = made(count=1, on_limit="wait", startup=5.0)
    c.before_create(request("first"))
    c.after_init(handle("first"))
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (c.before_create(request("second")), got.set()))
    waiter.start()
    assert not got.wait(0.3)  # full: it waits ...
    c.release(handle("first"))
    assert got.wait(2)  # ... and goes as soon as a place is free
    waiter.join()


def test_waiting_is_bounded_by_the_startup_timeout(made):
    c, _, _ = made(count=1, on_limit="wait", startup=0.3)
    c.before_create(request("first"))
    t0 = time.monotonic()
    with pytest.raises(ResourceLimitExceeded) as info:
        c.before_create(request("second"))
    assert 0.25 <= time.monotonic() - t0 < 2 and "after waiting 0.3 s" in str(info.value)


def test_a_kept_environment_cgroup_goes_once_its_singleton_is_gone(tmp_path):
    driver = FakeDriver()
    noop = lambda *a, **k: None  # noqa: E731
    first = CgroupConfiner(policy(), driver, environment_id="env-first", audit=noop)
    first.before_create(request("singleton"))
    first.after_init(handle("singleton"))  # a kept singleton: its process stays after close
    first.close()
    assert "env-first" in driver.dirs  # kept on purpose while the singleton runs
    driver.procs.pop("env-first/singleton")  # replaced later: its container is gone
    second = CgroupConfiner(policy(), driver, environment_id="env-second", audit=noop)
    second.close()
    assert "env-first" not in driver.dirs and "env-first/singleton" not in driver.dirs
    assert "env-second" not in driver.dirs
