"""Singletons live in the shared-services cgroup, under [cleanroom.resource_limits.services],
on real rootless Podman and real cgroups: they outlive the environment that made them,
every environment using them (one that adopted them too) reports them, their memory
limit holds, and nothing empty is left once they are gone.

Each test uses its own singleton name; the running postgres/redis singletons other
tests share are never touched. The group's own limits are set by whichever environment
creates a singleton while none runs there (the documented rule), so where another
run's singleton already occupies the group the tests check that rule instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer
from sandbox.confine import leftover_cgroups, prune_cgroups, shared
from sandbox.confine.cgroups import CGROUP_ROOT, detect_version, make_driver, subtree_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, REPO, SERVICES  # noqa: E402

MiB = 1024 * 1024
GROUP = shared.GROUP
POLICY_A = """
[cleanroom.resource_limits.services]
memory_bytes = "192MiB"
cpu_percent = 50.0
pids_limit = 300
service_memory_bytes = "96MiB"
service_pids_limit = 64
"""


def cg_value(rel: str, v1: tuple[str, str], v2: str) -> str:
    """A cgroup file of ours, as the kernel has it (v1: controller, file; v2: file)."""
    if detect_version() == "v1":
        return (CGROUP_ROOT / v1[0] / subtree_name() / rel / v1[1]).read_text().strip()
    return (CGROUP_ROOT / subtree_name() / rel / v2).read_text().strip()


def memory_limit(rel: str) -> int:
    return int(cg_value(rel, ("memory", "memory.limit_in_bytes"), "memory.max"))


def pids_limit(rel: str) -> int:
    return int(cg_value(rel, ("pids", "pids.max"), "pids.max"))


def cgroup_of(pid: int) -> str:
    """Where the kernel says process ``pid`` is (the memory controller's path on v1)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(",") or ctrls == "":
            return path
    raise AssertionError(f"no memory cgroup for pid {pid}")


@pytest.fixture
def name(podman_api):
    """A singleton name of this test's own; its container is removed after, whatever happened."""
    n = f"cgtest-{uuid.uuid4().hex[:8]}"
    yield n
    filters = json.dumps({"label": [f"io.cleanroom.singleton={n}"]})
    for c in podman_api.get("/containers/json", params={"all": True, "filters": filters}).json() or []:
        podman_api.delete(f"/containers/{c['Id']}", params={"force": True, "timeout": 0})
    driver = make_driver()
    shared.prune(driver)
    assert f"cleanroom-singleton-{n}" not in driver.children(GROUP)
    assert leftover_cgroups(os.getpid()) == []


def env_for(tmp_path, podman_url, toml: str) -> CleanroomEnvironment:
    return CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path)


ADOPT = """
import json, sys
from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer
toml = '[cleanroom.resource_limits.services]\\nservice_memory_bytes = "128MiB"\\nservice_pids_limit = 64\\n'
with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=sys.argv[1], audit_dir=sys.argv[3]) as env:
    c = env.get_or_create_container(sys.argv[2], lambda: GenericContainer(sys.argv[4], ["/bin/sleep", "600"]))
    check = env.check_resource_limits()["services"]
    metrics = env.get_metrics()["services"]
    events = [e["event"] for e in env.get_security_events()] + [line for line in env.get_logs()]
    print(json.dumps({"reused": c.reused, "id": c.service.id, "check": check, "metrics": metrics,
                      "audited": any("services.limits_mismatch" in str(e) for e in events)}))
"""


def test_a_singleton_lives_in_the_shared_cgroup_outlives_its_environment_and_is_reported_by_adopters(
        tmp_path, podman_url, name):
    driver = make_driver()
    group_was_busy = any(driver.tasks(f"{GROUP}/{c}") for c in driver.children(GROUP))
    group_before = memory_limit(GROUP) if group_was_busy else None
    with env_for(tmp_path / "a", podman_url, POLICY_A) as env_a:
        svc = env_a.get_or_create_container(name, lambda: GenericContainer(BUSYBOX, ["/bin/sleep", "600"]))
        cname, pid, cid = svc.service.name, svc.service.handle.pid, svc.service.id
        rel = f"{GROUP}/{cname}"
        # The kernel's view: the singleton's process is in its shared cgroup, not the environment's.
        assert cgroup_of(pid) == f"/{subtree_name()}/{rel}"
        assert cname not in driver.children(env_a.id)
        assert memory_limit(rel) == 96 * MiB and pids_limit(rel) == 64  # service_memory_bytes, service_pids_limit
        report = env_a.check_resource_limits()["services"]
        entry = report["services"][name]
        assert entry["shared"] and entry["cgroup"] == rel and entry["container"] == cname
        assert entry["memory_bytes"]["limit"] == 96 * MiB and entry["pids"]["limit"] == 64
        assert entry["pids"]["used"] >= 1 and entry["mismatch"] == []
        if not group_was_busy:  # this policy made the group: memory_bytes, pids_limit, cpu_percent are its
            assert memory_limit(GROUP) == 192 * MiB and pids_limit(GROUP) == 300
            if detect_version() == "v1":
                assert cg_value(GROUP, ("cpu", "cpu.cfs_quota_us"), "") == "50000"
            assert report["group"]["mismatch"] == []
        else:  # another policy's singleton runs there: the group keeps its limits, a difference is named
            assert memory_limit(GROUP) == group_before
            named = any(m.startswith("memory_bytes:") for m in report["group"]["mismatch"])
            assert named == (group_before != 192 * MiB)
        env_a_id = env_a.id
    # A is closed: its cgroup is gone, the singleton runs on in the same shared cgroup.
    assert env_a_id not in driver.children()
    assert cgroup_of(pid) == f"/{subtree_name()}/{rel}"
    # B, a later process whose policy asks for other limits, adopts it and reports it.
    out = subprocess.run([sys.executable, "-c", ADOPT, podman_url, name, str(tmp_path / "b"), BUSYBOX],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["reused"] and seen["id"] == cid
    for view in (seen["check"], seen["metrics"]):
        adopted = view["services"][name]
        assert adopted["cgroup"] == rel and adopted["shared"] and adopted["memory_bytes"]["limit"] == 96 * MiB
        assert adopted["mismatch"] == [f"service_memory_bytes: the cgroup has {96 * MiB}, this policy asks "
                                       f"{128 * MiB}"]
        assert adopted["pids"]["used"] >= 1
    assert seen["audited"]
    assert memory_limit(rel) == 96 * MiB  # B did not change what A's policy set
    # Removed by a later environment that adopted it: no empty shared cgroup is left.
    with env_for(tmp_path / "c", podman_url, POLICY_A) as env_c:
        again = env_c.get_or_create_container(name, lambda: GenericContainer(BUSYBOX, ["/bin/sleep", "600"]))
        assert again.reused and again.service.id == cid
        again.stop()
    assert cname not in driver.children(GROUP)
    if not group_was_busy:
        assert GROUP not in driver.children() or any(driver.tasks(f"{GROUP}/{c}") for c in driver.children(GROUP))


def test_a_singleton_past_its_services_memory_limit_is_oom_killed(tmp_path, podman_url, name):
    toml = '[cleanroom.resource_limits.services]\nservice_memory_bytes = "48MiB"\n'
    bomb = "import time; x = bytearray(160 << 20); print('survived', flush=True); time.sleep(600)"
    with env_for(tmp_path, podman_url, toml) as env:
        svc = env.get_or_create_container(name, lambda: GenericContainer(SERVICES, ["python3", "-c", bomb]))
        rel = f"{GROUP}/{svc.service.name}"
        assert memory_limit(rel) == 48 * MiB
        deadline = time.monotonic() + 60
        while svc.service.state().get("Running") and time.monotonic() < deadline:
            time.sleep(0.2)
        state = svc.service.state()
        assert not state["Running"] and state["ExitCode"] == 137, state
        assert "survived" not in svc.logs()
        entry = env.check_resource_limits()["services"]["services"][name]
        assert entry["oom_kills"] >= 1 and entry["memory_bytes"]["peak"] <= 48 * MiB
        if detect_version() == "v1":
            oom = dict(line.split() for line in cg_value(rel, ("memory", "memory.oom_control"), "").splitlines())
            assert int(oom["oom_kill"]) >= 1
        svc.stop()  # made here: removed through the runner, its cgroup with it
        assert svc.service.name not in make_driver().children(GROUP)


def test_prune_removes_the_cgroup_of_a_singleton_removed_behind_cleanrooms_back(tmp_path, podman_url, name,
                                                                               podman_api):
    driver = make_driver()
    with env_for(tmp_path, podman_url, POLICY_A) as env:
        svc = env.get_or_create_container(name, lambda: GenericContainer(BUSYBOX, ["/bin/sleep", "600"]))
        cname = svc.service.name
    podman_api.delete(f"/containers/{svc.service.id}", params={"force": True, "timeout": 0})  # `podman rm -f`
    assert cname in driver.children(GROUP) and not driver.tasks(f"{GROUP}/{cname}")  # left empty
    assert f"{GROUP}/{cname}" in prune_cgroups()  # what `cleanroom prune` runs for cgroups
    assert cname not in driver.children(GROUP)
    assert GROUP not in driver.children() or any(driver.tasks(f"{GROUP}/{c}") for c in driver.children(GROUP))


def test_without_singletons_a_service_stays_in_its_environments_cgroup_and_budget(tmp_path, podman_url):
    toml = "[cleanroom]\nenable_singleton_containers = false\n" + POLICY_A
    with env_for(tmp_path, podman_url, toml) as env:
        svc = env.get_or_create_container("own-sleeper", lambda: GenericContainer(BUSYBOX, ["/bin/sleep", "600"]))
        rel = f"{env.id}/{svc.service.name}"
        assert cgroup_of(svc.service.handle.pid) == f"/{subtree_name()}/{rel}"
        assert memory_limit(rel) == 512 * MiB  # the sandbox limits (default), not service_memory_bytes
        report = env.check_resource_limits()
        assert report["services"]["services"] == {}  # nothing shared is used
        assert report["containers"]["used"] == 1
