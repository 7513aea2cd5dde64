"""Policy → libpod create spec: every mapping DESIGN.md and issue 2 name."""

from __future__ import annotations

import platform

import pytest

from sandbox.engine.spec import build_spec, check_ports
from sandbox.errors import NetworkPolicyViolation
from sandbox.policy import CleanroomConfig

IMG = "localhost/cleanroom/busybox:latest"


def cfg(text: str = "") -> CleanroomConfig:
    return CleanroomConfig.from_toml("[cleanroom]\n" + text)


def test_default_is_network_none_readonly_root_caps_dropped_nnp():
    spec = build_spec(cfg(), IMG, ["/bin/true"], labels={"a": "b"})
    assert spec["image"] == IMG and spec["command"] == ["/bin/true"]
    assert spec["netns"] == {"nsmode": "none"}
    assert spec["read_only_filesystem"] is True
    tmp = [m for m in spec["mounts"] if m["destination"] == "/tmp"]
    assert tmp and tmp[0]["type"] == "tmpfs"
    assert any(o.startswith("size=") and int(o[5:]) > 0 for o in tmp[0]["options"])
    assert spec["cap_drop"] == ["ALL"]
    assert spec["no_new_privileges"] is True
    assert spec["labels"] == {"a": "b"}
    # The default level (High) runs under cleanroom's hardened profile, not the engine's default.
    assert spec["seccomp_profile_path"].endswith(f"hardened-{platform.machine()}.json")


def test_maximum_level_adds_no_capability_back():
    spec = build_spec(cfg('[cleanroom.security_policy]\nsecurity_level = "Maximum"\n'), IMG, ["x"])
    assert spec["cap_drop"] == ["ALL"]
    assert not spec.get("cap_add")


def test_explicit_capabilities_override_the_preset():
    spec = build_spec(
        cfg('[cleanroom.security_policy]\nsecurity_level = "Maximum"\nallowed_capabilities = ["CAP_NET_BIND_SERVICE"]\n'),
        IMG, ["x"],
    )
    assert spec["cap_add"] == ["NET_BIND_SERVICE"]


def test_filesystem_isolation_off_gives_a_writable_root():
    spec = build_spec(cfg("[cleanroom.security_policy]\nenable_filesystem_isolation = false\n"), IMG, ["x"])
    assert not spec.get("read_only_filesystem")
    assert "mounts" not in spec


def test_tmpfs_size_comes_from_the_policy():
    spec = build_spec(cfg('[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "8MiB"\n'), IMG, ["x"])
    assert f"size={8 * 1024 * 1024}" in spec["mounts"][0]["options"]


def test_deterministic_execution_pins_environment():
    spec = build_spec(cfg("enable_deterministic_execution = true\ndeterministic_seed = 7\n"), IMG, ["x"],
                      env={"USER_VAR": "1"})
    assert spec["env"]["CLEANROOM_SEED"] == "7"
    assert spec["env"]["PYTHONHASHSEED"] == "7"
    assert spec["env"]["TZ"] == "UTC"
    assert spec["env"]["USER_VAR"] == "1"
    assert spec["hostname"] == "cleanroom"


def test_non_deterministic_sets_no_seed():
    spec = build_spec(cfg(), IMG, ["x"])
    assert "CLEANROOM_SEED" not in spec.get("env", {})


def test_network_isolation_off_uses_slirp():
    spec = build_spec(cfg("[cleanroom.security_policy]\nenable_network_isolation = false\n"), IMG, ["x"])
    assert spec["netns"] == {"nsmode": "slirp4netns"}


def test_ports_bind_loopback_only():
    spec = build_spec(cfg("[cleanroom.security_policy]\nallowed_ports = [5432]\n"), IMG, ["x"], ports={5432: None})
    assert spec["portmappings"] == [
        {"container_port": 5432, "host_port": 0, "host_ip": "127.0.0.1", "protocol": "tcp"}
    ]
    assert spec["netns"]["nsmode"] == "slirp4netns"


def test_port_not_allowed_is_refused_before_anything_is_made():
    with pytest.raises(NetworkPolicyViolation) as info:
        check_ports(cfg("[cleanroom.security_policy]\nallowed_ports = [5432]\n"), {8080: None})
    assert "8080" in str(info.value) and "allowed_ports" in str(info.value)


def test_pids_limit_is_passed_for_hosts_that_honour_it():
    spec = build_spec(cfg("[cleanroom.resource_limits.sandbox]\npids_limit = 64\n"), IMG, ["x"])
    assert spec["resource_limits"]["pids"] == {"limit": 64}


def test_process_isolation_on_is_private_pid_and_ipc_namespaces():
    spec = build_spec(cfg(), IMG, ["x"])
    assert spec["pidns"] == {"nsmode": "private"} and spec["ipcns"] == {"nsmode": "private"}


def test_process_isolation_off_shares_the_host_pid_namespace_only():
    spec = build_spec(cfg('[cleanroom.security_policy]\nsecurity_level = "Low"\nenable_process_isolation = false\n'),
                      IMG, ["x"])
    assert spec["pidns"] == {"nsmode": "host"} and spec["ipcns"] == {"nsmode": "private"}
