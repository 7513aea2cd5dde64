"""The shared-services cgroup's rules against a fake driver: where a singleton goes,
whose limits the group and each singleton get, what is reported when a policy asks for
other limits, and that removal and prune leave no empty cgroup. (Real cgroups and a real
OOM kill: tests/security/test_shared_services_cgroup.py.)"""

from __future__ import annotations

import pytest
from test_confine_limits import FakeDriver, policy

import sandbox.confine as confine
from sandbox.confine import shared
from sandbox.confine.limits import CgroupConfiner
from sandbox.engine.types import LABEL_CGROUP, SHARED_SERVICES_CGROUP, CreateRequest, SandboxHandle
from sandbox.errors import CleanroomError

MiB = 1 << 20
GROUP = SHARED_SERVICES_CGROUP


class LimitsDriver(FakeDriver):
    """Reads limits back the way a real driver does: from what was written."""

    def read_usage(self, rel):
        out = super().read_usage(rel)
        written = self.dirs.get(rel, {})
        if "memory" in written:
            out["memory_limit"] = written["memory"]
        if "pids" in written:
            out["pids_limit"] = written["pids"]
        return out


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))


@pytest.fixture
def driver():
    return LimitsDriver()


@pytest.fixture
def confiners(driver):
    made = []

    def make(env_id="env-a", **over):
        audits: list = []
        c = CgroupConfiner(policy(**over), driver, environment_id=env_id,
                           audit=lambda event, level, **data: audits.append((event, data)))
        c.audits = audits
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def singleton(c: CgroupConfiner, name: str, pid: int) -> SandboxHandle:
    c.before_create(CreateRequest(image="img", name=name, kind="service", labels={LABEL_CGROUP: GROUP}))
    h = SandboxHandle(id=f"id-{name}", name=name, pid=pid)
    c.after_init(h)
    return h


def test_a_singleton_goes_to_the_shared_group_with_the_services_limits_not_the_environments(confiners, driver):
    a = confiners()
    h = singleton(a, "cleanroom-singleton-db", 101)
    rel = f"{GROUP}/cleanroom-singleton-db"
    assert driver.procs[rel] == [101]
    assert driver.dirs[GROUP] == {"memory": 256 * MiB, "pids": 300}  # memory_bytes, pids_limit: the group
    assert driver.dirs[rel] == {"memory": 96 * MiB, "pids": 64}  # service_memory_bytes, service_pids_limit
    assert not [k for k in driver.dirs if k.startswith("env-a/")]
    assert h.facts["cgroup"]["path"] == rel and h.usage.memory_limit_bytes == 96 * MiB
    # An ordinary sandbox of the same environment still lives in the environment.
    a.before_create(CreateRequest(image="img", name="sb"))
    a.after_init(SandboxHandle(id="id-sb", name="sb", pid=102))
    assert driver.procs["env-a/sb"] == [102]


def test_the_group_keeps_the_first_policys_limits_and_a_later_policy_sees_a_mismatch(confiners, driver):
    a = confiners("env-a")
    singleton(a, "cleanroom-singleton-one", 101)
    b = confiners("env-b", group_memory=512 * MiB, svc_memory=128 * MiB)
    singleton(b, "cleanroom-singleton-two", 102)
    assert driver.dirs[GROUP] == {"memory": 256 * MiB, "pids": 300}  # one runs: the group is not changed
    assert driver.dirs[f"{GROUP}/cleanroom-singleton-two"]["memory"] == 128 * MiB  # its own: its creator's
    report = b.shared_services([("one", "cleanroom-singleton-one", 0), ("two", "cleanroom-singleton-two", 0)])
    assert report["group"]["memory_bytes"]["limit"] == 256 * MiB
    assert report["group"]["mismatch"] == [f"memory_bytes: the cgroup has {256 * MiB}, this policy asks {512 * MiB}"]
    one, two = report["services"]["one"], report["services"]["two"]
    assert one["shared"] and one["cgroup"] == f"{GROUP}/cleanroom-singleton-one"
    assert one["mismatch"] == [f"service_memory_bytes: the cgroup has {96 * MiB}, this policy asks {128 * MiB}"]
    assert two["mismatch"] == []
    assert shared.mismatches(report) == [
        f"{GROUP}: memory_bytes: the cgroup has {256 * MiB}, this policy asks {512 * MiB}",
        f"one ({GROUP}/cleanroom-singleton-one): service_memory_bytes: the cgroup has {96 * MiB}, "
        f"this policy asks {128 * MiB}"]
    assert a.shared_services([("one", "cleanroom-singleton-one", 0)])["group"]["mismatch"] == []
    # Logged and audited once per difference, however often the report is read (get_metrics too).
    assert b.report([("one", "cleanroom-singleton-one", 0)])["services"]["services"]["one"]["mismatch"]
    assert [(e, len(d["differences"])) for e, d in b.audits] == [("services.limits_mismatch", 2)]
    assert a.audits == []


def test_an_empty_group_is_made_afresh_with_the_new_policys_limits(confiners, driver):
    driver.make(GROUP)
    driver.set_limits(GROUP, memory=64 * MiB, pids=10)  # left by an earlier policy, nothing runs in it
    driver.make(f"{GROUP}/cleanroom-singleton-old")
    singleton(confiners(), "cleanroom-singleton-db", 101)
    assert driver.dirs[GROUP] == {"memory": 256 * MiB, "pids": 300}
    assert f"{GROUP}/cleanroom-singleton-old" not in driver.dirs


def test_removal_takes_the_singletons_cgroup_and_the_group_once_empty(confiners, driver):
    a = confiners()
    one = singleton(a, "cleanroom-singleton-one", 101)
    two = singleton(a, "cleanroom-singleton-two", 102)
    driver.procs[f"{GROUP}/cleanroom-singleton-one"] = []  # its container was removed
    a.release(one)
    assert f"{GROUP}/cleanroom-singleton-one" not in driver.dirs and GROUP in driver.dirs
    driver.procs[f"{GROUP}/cleanroom-singleton-two"] = []
    a.release(two)
    assert not [k for k in driver.dirs if k.startswith(GROUP)]


def test_a_singleton_adopted_from_another_process_is_released_by_name(confiners, driver):
    singleton(confiners("env-a"), "cleanroom-singleton-db", 101)
    b = confiners("env-b")  # adopted: never created through b, so b does not track it
    driver.procs[f"{GROUP}/cleanroom-singleton-db"] = []
    b.release(SandboxHandle(id="id-x", name="cleanroom-singleton-db", pid=101))
    assert not [k for k in driver.dirs if k.startswith(GROUP)]


def test_a_memory_kill_in_a_singleton_names_the_services_limits(confiners, driver):
    a = confiners()
    h = singleton(a, "cleanroom-singleton-db", 101)
    rel = f"{GROUP}/cleanroom-singleton-db"
    driver.usage[rel] = {"peak_memory": 10 * MiB, "oom_kills": 1, "memory_failcnt": 0}
    driver.usage[GROUP] = {"peak_memory": 256 * MiB}
    a.after_exit(h)
    assert [(b.limit, b.limit_value, b.observed) for b in h.breaches] == [("memory", 256 * MiB, 256 * MiB)]
    assert "services.memory_bytes" in h.breaches[0].detail
    h2 = singleton(a, "cleanroom-singleton-cache", 102)
    driver.usage[f"{GROUP}/cleanroom-singleton-cache"] = {"peak_memory": 96 * MiB, "oom_kills": 2}
    a.after_exit(h2)
    assert (h2.breaches[0].limit_value, "service_memory_bytes" in h2.breaches[0].detail) == (96 * MiB, True)


def test_prune_takes_empty_shared_cgroups_and_keeps_running_singletons(confiners, driver, monkeypatch):
    monkeypatch.setattr(confine, "make_driver", lambda: driver)
    a = confiners()
    singleton(a, "cleanroom-singleton-live", 101)
    singleton(a, "cleanroom-singleton-gone", 102)
    driver.procs[f"{GROUP}/cleanroom-singleton-gone"] = []  # removed behind our back (podman rm)
    assert f"{GROUP}/cleanroom-singleton-gone" in confine.prune_cgroups()
    assert set(driver.children(GROUP)) == {"cleanroom-singleton-live"}
    driver.procs[f"{GROUP}/cleanroom-singleton-live"] = []
    assert GROUP in confine.prune_cgroups()
    assert GROUP not in driver.children()


def test_no_environment_may_take_the_groups_name(driver):
    with pytest.raises(CleanroomError, match="shared singleton services"):
        CgroupConfiner(policy(), driver, environment_id=GROUP, audit=lambda *a, **k: None)


def test_releasing_a_replaced_singleton_leaves_its_successors_cgroup_alone(confiners, driver):
    a = confiners("env-a")
    old = singleton(a, "cleanroom-singleton-db", 101)
    driver.procs[f"{GROUP}/cleanroom-singleton-db"] = []  # another process removed it ...
    singleton(confiners("env-b", svc_memory=128 * MiB), "cleanroom-singleton-db", 202)  # ... and made a new one
    a.release(old)  # a stops its old handle later
    assert driver.procs[f"{GROUP}/cleanroom-singleton-db"] == [202]
    assert driver.dirs[f"{GROUP}/cleanroom-singleton-db"]["memory"] == 128 * MiB
