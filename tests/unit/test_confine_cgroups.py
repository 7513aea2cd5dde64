"""The cgroup drivers against fake trees: what they write and how they read it back.
(Real placement and enforcement are proven in tests/security on real cgroups.)"""

from __future__ import annotations

import os

import pytest

from sandbox.confine.cgroups import CgroupError, CgroupV1, CgroupV2, detect_version


def test_detect_version(tmp_path):
    assert detect_version(tmp_path) == "none"
    (tmp_path / "memory").mkdir()
    assert detect_version(tmp_path) == "v1"
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    assert detect_version(tmp_path) == "v2"


@pytest.fixture
def v2(tmp_path):
    base = tmp_path / "cleanroom.tester"
    base.mkdir()
    (base / "cgroup.controllers").write_text("cpu io memory pids\n")
    (base / "cgroup.subtree_control").write_text("")
    return CgroupV2(tmp_path, user="tester")


def test_v2_limits_are_written_in_unified_syntax(v2):
    d = v2.base / "env" / "sb"
    d.mkdir(parents=True)
    for f in ("memory.max", "memory.swap.max", "cpu.max", "pids.max"):
        (d / f).write_text("max\n")
    applied = v2.set_limits("env/sb", memory=64 << 20, memory_swap=64 << 20, cpu_percent=50.0, pids=64)
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == "0"  # memory+swap equal to memory: no swap
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "pids.max").read_text() == "64"
    assert applied["cpu.max"] == "50000 100000"


def test_v2_make_enables_controllers_on_the_parent(v2):
    v2.make("env")
    assert (v2.base / "env").is_dir()
    assert (v2.base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +io"


def test_v2_usage_is_read_from_the_unified_files(v2):
    d = v2.base / "env" / "sb"
    d.mkdir(parents=True)
    (d / "memory.peak").write_text("1048576\n")
    (d / "memory.current").write_text("4096\n")
    (d / "memory.max").write_text("max\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.events").write_text("max 2\n")
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (d / "cpu.max").write_text("50000 100000\n")
    u = v2.read_usage("env/sb")
    assert u["peak_memory"] == 1048576 and u["oom_kills"] == 1 and "memory_limit" not in u
    assert u["pids_limit_hits"] == 2 and u["cpu_ns"] == 2_500_000_000 and u["cpu_quota_us"] == 50000


def test_v2_placement_is_verified_not_assumed(v2):
    d = v2.base / "env"
    d.mkdir()
    (d / "cgroup.procs").write_text("")
    # Writing into a fake file "succeeds", but the process is not really there.
    with pytest.raises(CgroupError, match="after placement"):
        v2.place("env", os.getpid())


def test_v1_reads_counters_from_each_controller(tmp_path):
    for c in ("memory", "pids", "cpu", "cpuacct", "blkio"):
        (tmp_path / c / "cleanroom.tester" / "env").mkdir(parents=True)
    m = tmp_path / "memory" / "cleanroom.tester" / "env"
    (m / "memory.max_usage_in_bytes").write_text("67108864\n")
    (m / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    p = tmp_path / "pids" / "cleanroom.tester" / "env"
    (p / "pids.events").write_text("max 5\n")
    (p / "pids.peak").write_text("64\n")
    (tmp_path / "cpuacct" / "cleanroom.tester" / "env" / "cpuacct.usage").write_text("1500000000\n")
    u = CgroupV1(tmp_path, user="tester").read_usage("env")
    assert u["peak_memory"] == 67108864 and u["oom_kills"] == 2
    assert u["pids_limit_hits"] == 5 and u["peak_pids"] == 64 and u["cpu_ns"] == 1_500_000_000


def test_v1_makes_a_cgroup_again_after_it_was_removed(tmp_path):
    # The shared-services cgroup comes and goes under one name within one process.
    for c in ("memory", "pids", "cpu", "cpuacct", "blkio"):
        (tmp_path / c / "cleanroom.tester").mkdir(parents=True)
    driver = CgroupV1(tmp_path, user="tester")
    for _ in range(2):
        driver.make("shared-services/one")
        assert (tmp_path / "pids" / "cleanroom.tester" / "shared-services" / "one").is_dir()
        driver.remove("shared-services/one", timeout=0.1)
        driver.remove("shared-services", timeout=0.1)
        assert not (tmp_path / "memory" / "cleanroom.tester" / "shared-services").exists()
