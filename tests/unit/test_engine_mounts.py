"""Bind mounts without Podman: the policy's checks on real paths in tmp_path, the create
body, the posture check of binds, stdin through the runner (fake engine)."""

from __future__ import annotations

import os
import socket

import msgspec
import pytest
from fake_podman import FakePodman

from sandbox.engine.mounts import check_mounts, parse_volume
from sandbox.engine.posture import KernelView, Posture, differences, parse_mountinfo
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.spec import build_spec
from sandbox.engine.teardown import cleanup
from sandbox.engine.types import Mount
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig
from sandbox.policy.check import check_policy


def _config(**security) -> CleanroomConfig:
    config = CleanroomConfig.default()
    return config.with_changes(security_policy=msgspec.structs.replace(config.security_policy, **security))


@pytest.mark.parametrize("text,mount", [
    ("a:/b", Mount("a", "/b", True)), ("a:/b:ro", Mount("a", "/b", True)), ("a:/b:rw", Mount("a", "/b", False)),
])
def test_volume_syntax_is_read_only_by_default(text, mount):
    assert parse_volume(text) == mount


@pytest.mark.parametrize("text", ["a", "a:/b:rx", "a:/b:ro:z"])
def test_bad_volume_syntax_is_a_policy_error(text):
    with pytest.raises(PolicyError):
        parse_volume(text)


def test_the_default_allows_the_current_directory_only(tmp_path, monkeypatch):
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert check_mounts(_config(), [Mount("src", "/src")]) == [Mount(str(tmp_path / "proj" / "src"), "/src")]
    with pytest.raises(PolicyError, match="outside the allowed paths"):
        check_mounts(_config(), [Mount("../other", "/o")])


def test_symlinks_are_judged_by_where_they_land(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "inner").mkdir(parents=True)
    (allowed / "ok").symlink_to(allowed / "inner")
    (allowed / "out").symlink_to(tmp_path)
    cfg = _config(allowed_mount_paths=[str(allowed)])
    assert check_mounts(cfg, [Mount(str(allowed / "ok"), "/i")])[0].source == str(allowed / "inner")
    with pytest.raises(PolicyError, match=f"resolves to {tmp_path}"):
        check_mounts(cfg, [Mount(str(allowed / "out"), "/o")])


def test_sockets_devices_root_and_the_engine_socket_are_refused(tmp_path):
    sock_dir = tmp_path / "run"
    sock_dir.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_dir / "engine.sock"))
    os.mkfifo(tmp_path / "fifo")
    try:
        cfg = _config(allowed_mount_paths=["/", str(tmp_path)])
        for source, words in [(str(sock_dir / "engine.sock"), "socket"), (str(tmp_path / "fifo"), "FIFO"),
                              ("/dev/null", "device file"), ("/", "root directory")]:
            with pytest.raises(PolicyError, match=words):
                check_mounts(cfg, [Mount(source, "/x")])
        with pytest.raises(PolicyError, match="Podman API socket"):
            check_mounts(cfg, [Mount(str(sock_dir), "/x")], sockets=[str(sock_dir / "engine.sock")])
        with pytest.raises(PolicyError, match="Podman API socket"):
            check_mounts(cfg, [Mount(str(tmp_path), "/x")], sockets=[str(sock_dir / "engine.sock")])
    finally:
        server.close()


@pytest.mark.parametrize("target", ["relative", "/a/../b", "/", "/proc", "/sys/fs", "/dev/shm"])
def test_targets_must_be_plain_absolute_paths_off_the_kernels_own(tmp_path, target):
    with pytest.raises(PolicyError):
        check_mounts(_config(allowed_mount_paths=[str(tmp_path)]), [Mount(str(tmp_path), target)])


def test_writable_mounts_need_the_policy_and_two_at_one_target_are_refused(tmp_path):
    rw = [Mount(str(tmp_path), "/w", read_only=False)]
    with pytest.raises(PolicyError, match="allow_writable_mounts"):
        check_mounts(_config(allowed_mount_paths=[str(tmp_path)]), rw)
    assert check_mounts(_config(allowed_mount_paths=[str(tmp_path)], allow_writable_mounts=True), rw) == rw
    with pytest.raises(PolicyError, match="two mounts"):
        check_mounts(_config(allowed_mount_paths=[str(tmp_path)]), [Mount(str(tmp_path), "/a")] * 2)


def test_binds_in_the_create_body_are_rbind_nosuid_nodev_and_replace_a_tmpfs_at_the_same_path():
    spec = build_spec(CleanroomConfig.default(), "img", ["x"], mounts=[Mount("/h/src", "/src"),
                                                                       Mount("/h/tmp", "/tmp", read_only=False)],
                      workdir="/src", stdin=True)
    binds = {m["destination"]: m for m in spec["mounts"] if m["type"] == "bind"}
    assert binds["/src"]["options"] == ["rbind", "ro", "nosuid", "nodev"]
    assert binds["/tmp"]["options"] == ["rbind", "rw", "nosuid", "nodev"]
    assert [m for m in spec["mounts"] if m["type"] == "tmpfs"] == []
    assert spec["work_dir"] == "/src" and spec["stdin"] is True


def _spec_with(mount: Mount) -> dict:
    return build_spec(CleanroomConfig.default(), "img", ["x"], mounts=[mount])


def test_posture_read_only_bind_must_not_be_writable():
    spec = _spec_with(Mount("/h", "/src"))
    good = Posture(read_only_root=True, no_new_privileges=True, network_mode="none", writable_mounts=["/tmp"])
    assert [d for d in differences(spec, good, None) if "mount" in d] == []
    bad = msgspec.structs.replace(good, writable_mounts=["/src", "/tmp"])
    assert any("asked read-only are writable" in d for d in differences(spec, bad, None))
    # A writable bind that was asked for is no difference.
    rw = _spec_with(Mount("/h", "/out", read_only=False))
    assert [d for d in differences(rw, msgspec.structs.replace(good, writable_mounts=["/out", "/tmp"]), None)
            if "mount" in d] == []


def _kernel(mounts):
    return KernelView(bounding_caps=[], no_new_privs=True, seccomp_filtered=True, mounts=mounts)


def test_posture_reads_binds_in_the_kernels_mount_table():
    spec = _spec_with(Mount("/h", "/src"))
    posture = Posture(read_only_root=True, no_new_privileges=True, network_mode="none")
    ok = _kernel({"/src": ["ro", "nosuid", "nodev", "relatime"]})
    assert [d for d in differences(spec, posture, ok) if "bind" in d] == []
    for mounts, words in [({"/src": ["rw", "nosuid", "nodev"]}, "is writable"),
                          ({"/src": ["ro", "nodev"]}, "lacks ['nosuid']"), ({}, "not mounted")]:
        assert any(words in d for d in differences(spec, posture, _kernel(mounts))), words


def test_mountinfo_parsing_unescapes_mount_points():
    text = ("36 35 0:31 / / ro,relatime - overlay overlay rw\n"
            "40 36 8:1 /home/u/my\\040dir /src ro,nosuid,nodev,relatime - ext4 /dev/vda rw\n"
            "41 36 8:1 /x /with\\040space rw,nosuid - ext4 /dev/vda rw\n")
    assert parse_mountinfo(text) == {"/": ["ro", "relatime"], "/src": ["ro", "nosuid", "nodev", "relatime"],
                                     "/with space": ["rw", "nosuid"]}


def _runner(fake: FakePodman, config: CleanroomConfig, audit: list) -> SandboxRunner:
    return SandboxRunner(fake, config, environment_id="env-unit-mounts", kernel_view=None,
                         audit=lambda event, level="Minimal", **data: audit.append((event, data)))


def test_a_refused_mount_never_reaches_the_engine(tmp_path):
    fake, audit = FakePodman(), []
    runner = _runner(fake, _config(allowed_mount_paths=[str(tmp_path)]), audit)
    with pytest.raises(PolicyError):
        runner.run(runner.request("img", ["/bin/true"], mounts=[Mount("/etc", "/etc2")]))
    assert "create" not in fake.log and fake.containers == {}
    assert [e for e, _ in audit] == ["mount.refused"]
    assert cleanup.run_all(owner="env-unit-mounts") == []


def test_stdin_is_fed_through_attach_only_when_the_request_opens_it(tmp_path):
    fake, audit = FakePodman(), []
    runner = _runner(fake, CleanroomConfig.default(), audit)
    runner.run(runner.request("img", ["/bin/cat"], stdin=True), stdin=b"data")
    runner.run(runner.request("img", ["/bin/cat"]), stdin=b"ignored")
    assert list(fake.stdin_fed.values()) == [b"data"]


def test_policy_check_warns_about_broad_and_writable_mounts():
    keys = {w.key for w in check_policy(_config(allowed_mount_paths=["/", "."], allow_writable_mounts=True))}
    assert {"cleanroom.security_policy.allowed_mount_paths", "cleanroom.security_policy.allow_writable_mounts"} <= keys
    quiet = {w.key for w in check_policy(_config(allowed_mount_paths=["."]))}
    assert not {k for k in quiet if "mount" in k}
