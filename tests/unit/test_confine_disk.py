"""The disk confiner's decisions on fake sizes: reservations against the budget, a
watched layer past its share or past what is left of the budget is killed once."""

from __future__ import annotations

import os

import pytest

from sandbox.confine.disk import DiskConfiner
from sandbox.engine.types import CreateRequest, Mount, SandboxHandle
from sandbox.errors import ResourceLimitExceeded
from sandbox.policy import CleanroomConfig

MiB = 1024 * 1024


def confiner(toml: str):
    sizes: dict[str, int] = {}
    killed: list[str] = []
    audit: list[tuple[str, dict]] = []
    c = DiskConfiner(CleanroomConfig.from_toml(toml), size_of=lambda cid: sizes.get(cid, 0), kill=killed.append,
                     audit=lambda event, level, **data: audit.append((event, data)))
    return c, sizes, killed, audit


WRITABLE = '[cleanroom.security_policy]\nsecurity_level = "Low"\n[cleanroom.performance_monitoring]\nmetrics_interval = 60\n'


def test_tmpfs_is_reserved_and_a_sandbox_that_cannot_fit_is_refused():
    c, *_ = confiner('[cleanroom.resource_limits]\nmax_disk_usage_bytes = "100MiB"\n'
                     '[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "40MiB"\n')
    c.before_create(CreateRequest(image="i", name="a"))
    c.before_create(CreateRequest(image="i", name="b"))
    with pytest.raises(ResourceLimitExceeded) as info:
        c.before_create(CreateRequest(image="i", name="c"))
    assert info.value.limit == "disk" and info.value.observed == 120 * MiB
    c.create_failed(CreateRequest(image="i", name="a"))
    c.before_create(CreateRequest(image="i", name="c"))  # a's place came back


def test_a_layer_past_its_share_is_killed_once_with_a_disk_breach():
    c, sizes, killed, audit = confiner(WRITABLE + '[cleanroom.resource_limits.sandbox]\ndisk_bytes = "10MiB"\n')
    h = SandboxHandle(id="c1", name="s1")
    c.after_init(h)
    sizes["c1"] = 11 * MiB
    c.after_exit(h)
    c.after_exit(h)
    assert killed == ["c1"] and [b.limit for b in h.breaches] == ["disk"] and h.usage.peak_disk_bytes == 11 * MiB
    assert [e for e, _ in audit] == ["limit.breach"]
    c.close()


def test_without_a_share_the_budget_left_beside_the_others_is_the_limit():
    c, sizes, killed, _ = confiner(WRITABLE + '[cleanroom.resource_limits]\nmax_disk_usage_bytes = "50MiB"\n')
    a, b = SandboxHandle(id="a", name="a"), SandboxHandle(id="b", name="b")
    c.after_init(a)
    c.after_init(b)
    sizes.update(a=30 * MiB, b=10 * MiB)
    c.after_exit(a)
    c.after_exit(b)
    assert killed == []  # 40 MiB together fit in 50
    sizes["b"] = 25 * MiB  # now 55 MiB together: b is past what a leaves it
    c.after_exit(b)
    assert killed == ["b"] and b.breaches[0].limit_value == 20 * MiB
    c.close()


def test_what_a_writable_mount_grew_by_counts_and_past_the_share_is_killed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "before").write_bytes(b"x" * (5 * MiB))  # there before the sandbox: not its writing
    c, sizes, killed, audit = confiner('[cleanroom.security_policy]\nallow_writable_mounts = true\n'
                                       '[cleanroom.resource_limits.sandbox]\ndisk_bytes = "10MiB"\n')
    req = CreateRequest(image="i", name="s1", mounts=[Mount(str(out), "/out", read_only=False),
                                                      Mount(str(tmp_path), "/ro")])
    c.before_create(req)
    h = SandboxHandle(id="c1", name="s1")
    c.after_init(h)  # a read-only root (High): only the mount is watched, never the layer
    sizes["c1"] = 50 * MiB
    (out / "a").write_bytes(b"x" * (6 * MiB))
    (out / "sub").mkdir()
    (out / "sub" / "b").write_bytes(b"x" * (3 * MiB))
    os.link(out / "a", out / "sub" / "a-again")  # one inode, counted once
    c.after_exit(h)
    assert killed == [] and h.usage.peak_disk_bytes == 9 * MiB
    (out / "c").write_bytes(b"x" * (2 * MiB))
    c.after_exit(h)
    assert killed == ["c1"] and h.usage.peak_disk_bytes == 11 * MiB
    assert [(b.limit, b.limit_value) for b in h.breaches] == [("disk", 10 * MiB)]
    assert "its writable mounts" in h.breaches[0].detail and "container layer" not in h.breaches[0].detail
    c.release(h)
    c.close()


def test_read_only_mounts_are_not_watched(tmp_path):
    c, sizes, killed, _ = confiner('[cleanroom.resource_limits.sandbox]\ndisk_bytes = "1MiB"\n')
    c.before_create(CreateRequest(image="i", name="s1", mounts=[Mount(str(tmp_path), "/ro")]))
    h = SandboxHandle(id="c1", name="s1")
    c.after_init(h)
    (tmp_path / "big").write_bytes(b"x" * (2 * MiB))  # the host writes there, not the sandbox
    c.after_exit(h)
    assert killed == [] and h.usage.peak_disk_bytes is None
