"""Disk on real Podman: a writable layer past its share is killed within an interval
and reported as a disk breach; tmpfs is capped by the kernel; the environment's budget
refuses a sandbox that cannot fit before anything is created."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer, ResourceLimitExceeded
from sandbox.engine.teardown.ownership import LABEL_ENV
from sandbox.engine.types import Mount

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, containers_with_label  # noqa: E402

MiB = 1024 * 1024
BOMB = ("i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=/bomb$i bs=1M count=8 2>/dev/null; "
        "i=$((i+1)); sleep 0.2; done; echo survived")


def test_a_disk_bomb_under_a_32_mib_share_is_stopped_and_reported_as_disk(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml('[cleanroom.security_policy]\nsecurity_level = "Low"\n'
                                    "[cleanroom.performance_monitoring]\nmetrics_interval = 0.2\n"
                                    '[cleanroom.resource_limits.sandbox]\ndisk_bytes = "32MiB"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(BUSYBOX, ["/bin/sh", "-c", BOMB], check=True)
    assert info.value.limit == "disk" and info.value.limit_value == 32 * MiB
    # Stopped within about one interval: far from the 320 MiB it meant to write.
    assert 32 * MiB < info.value.observed < 160 * MiB


def test_the_same_bomb_under_a_read_only_root_hits_the_tmpfs_cap(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml('[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "16MiB"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=64; echo rc=$?; "
                                               "touch /elsewhere; echo root=$?"])
    assert "No space left on device" in r.stderr and "rc=1" in r.stdout  # the kernel's hard limit
    assert "root=1" in r.stdout  # and the root is read-only: nothing else to fill


def test_a_sandbox_that_cannot_fit_the_disk_budget_is_refused_before_creation(tmp_path, podman_url, podman_api):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n"
                                    '[cleanroom.resource_limits]\nmax_disk_usage_bytes = "100MiB"\n'
                                    '[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "64MiB"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        holder = GenericContainer(BUSYBOX, ["/bin/sleep", "60"]).start(env)  # holds 64 MiB of tmpfs
        before = containers_with_label(podman_api, f"{LABEL_ENV}={env.id}")
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(BUSYBOX, ["/bin/true"])
        assert info.value.limit == "disk" and "was not created" in str(info.value)
        assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == before
        holder.stop()
        assert env.run(BUSYBOX, ["/bin/echo", "fits"]).stdout == "fits\n"  # the share came back


def test_bytes_written_under_a_writable_mount_count_against_the_disk_budget(tmp_path, podman_url):
    out = tmp_path / "out"
    out.mkdir()
    cfg = CleanroomConfig.from_toml(
        "[cleanroom.security_policy]\nallow_writable_mounts = true\n"
        f"allowed_mount_paths = [{str(tmp_path)!r}]\n"
        "[cleanroom.performance_monitoring]\nmetrics_interval = 0.2\n"
        '[cleanroom.resource_limits]\nmax_disk_usage_bytes = "20MiB"\n'
        '[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "4MiB"\n')  # 16 MiB of the budget left to write
    bomb = BOMB.replace("of=/bomb", "of=/out/bomb")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path / "audit") as env:
        small = env.run(BUSYBOX, ["/bin/sh", "-c", "dd if=/dev/zero of=/out/small bs=1M count=4 2>/dev/null"],
                        mounts=[Mount(str(out), "/out", read_only=False)])
        assert small.exit_code == 0 and not small.breaches
        assert 4 * MiB <= small.usage.peak_disk_bytes < 8 * MiB  # seen through the mount, on a read-only root
        with pytest.raises(ResourceLimitExceeded) as info:
            env.run(BUSYBOX, ["/bin/sh", "-c", bomb], mounts=[Mount(str(out), "/out", read_only=False)], check=True)
    assert info.value.limit == "disk" and info.value.limit_value == 16 * MiB
    assert "writable mounts" in str(info.value)
    written = sum(f.stat().st_size for f in out.glob("bomb*"))
    assert 16 * MiB < written < 160 * MiB  # stopped within about one interval, far from its 320 MiB
