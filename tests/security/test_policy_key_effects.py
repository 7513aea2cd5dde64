"""One policy key each, on real rootless Podman: the key set one way and the other
changes what a sandbox can do or what is recorded. These are the proving tests the
policy's effects table (sandbox/policy/effects.py) names for keys no other test proves.
Each compares against the default in the same test, so an ignored key fails it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, GenericContainer, TimeoutExceeded
from sandbox.audit import verify_audit_log
from sandbox.errors import PolicyError
from sandbox.services import LogMatches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX  # noqa: E402

SP = "[cleanroom.security_policy]\n"
MiB = 1024 * 1024


def run(tmp_path, podman_url, toml: str, script: str, **kw):
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        return env.run(BUSYBOX, ["/bin/sh", "-c", script], **kw)


def audit_records(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# -- isolation switches ------------------------------------------------------------
WRITE_ROOT = "touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly"


@pytest.mark.parametrize("toml,expected", [
    ("", "root-readonly"),
    (SP + "enable_filesystem_isolation = false\n", "root-writable"),
    (SP + "read_only_root = false\n", "root-writable"),
], ids=["default", "enable_filesystem_isolation-off", "read_only_root-off"])
def test_filesystem_isolation_and_read_only_root(tmp_path, podman_url, toml, expected):
    assert run(tmp_path, podman_url, toml, WRITE_ROOT).stdout.strip() == expected


STATUS = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t ' ' '"
CAP_KILL, CAP_NET_BIND_SERVICE = 1 << 5, 1 << 10
HIGH_CAPS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 6) | (1 << 7)  # CHOWN DAC_OVERRIDE FOWNER SETGID SETUID


def caps_and_nnp(tmp_path, podman_url, toml: str) -> tuple[int, int]:
    lines = dict(line.split(": ") for line in run(tmp_path, podman_url, toml, STATUS).stdout.splitlines())
    return int(lines["CapEff"], 16), int(lines["NoNewPrivs"])


def test_capabilities_and_no_new_privileges_follow_their_keys(tmp_path, podman_url):
    assert caps_and_nnp(tmp_path, podman_url, "") == (HIGH_CAPS, 1)  # the High preset
    maximum = SP + 'security_level = "Maximum"\n'
    assert caps_and_nnp(tmp_path, podman_url, maximum) == (0, 1)
    caps, _ = caps_and_nnp(tmp_path, podman_url, maximum + 'allowed_capabilities = ["NET_BIND_SERVICE"]\n')
    assert caps == CAP_NET_BIND_SERVICE
    caps, _ = caps_and_nnp(tmp_path, podman_url, maximum + "drop_all_capabilities = false\n")
    assert caps & CAP_KILL  # Podman's default set, which no preset of Maximum keeps
    assert caps_and_nnp(tmp_path, podman_url, maximum + "no_new_privileges = false\n")[1] == 0


def test_seccomp_profile_path_is_applied(tmp_path, podman_url):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    script = "mkdir /tmp/d 2>/dev/null && echo made || echo refused"
    assert run(tmp_path, podman_url, "", script).stdout.strip() == "made"
    assert run(tmp_path, podman_url, SP + f'seccomp_profile = "{profile}"\n', script).stdout.strip() == "refused"


IFACES = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"


def test_network_isolation_off_gives_an_interface_beyond_loopback(tmp_path, podman_url):
    assert run(tmp_path, podman_url, "", IFACES).stdout.split() == ["lo"]
    assert len(run(tmp_path, podman_url, SP + "enable_network_isolation = false\n", IFACES).stdout.split()) >= 2


def test_tmpfs_size_bounds_tmp(tmp_path, podman_url):
    script = "head -c 2097152 /dev/zero > /tmp/f 2>/dev/null; echo rc=$?; wc -c < /tmp/f"
    rc, written = run(tmp_path, podman_url, '[cleanroom.resource_limits.sandbox]\ntmpfs_bytes = "1MiB"\n',
                      script).stdout.split()
    assert rc != "rc=0" and int(written) <= MiB
    rc, written = run(tmp_path, podman_url, "", script).stdout.split()
    assert rc == "rc=0" and int(written) == 2 * MiB


# -- redaction -------------------------------------------------------------------------
TOKEN = "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8"  # a GitHub-token shape (fake)
LEAKY = f"echo password=hunter2-value {TOKEN} custom-CR-4242"


@pytest.mark.parametrize("toml,visible,masked", [
    ("", ["custom-CR-4242"], ["hunter2-value", TOKEN]),
    (SP + 'redaction_patterns = ["custom-CR-\\\\d+"]\n', [], ["hunter2-value", TOKEN, "custom-CR-4242"]),
    (SP + 'enable_builtin_redaction_rules = false\nredaction_patterns = ["custom-CR-\\\\d+"]\n',
     ["hunter2-value", TOKEN], ["custom-CR-4242"]),
    (SP + "enable_data_redaction = false\n", ["hunter2-value", TOKEN, "custom-CR-4242"], []),
], ids=["default", "redaction_patterns", "builtin-rules-off", "redaction-off"])
def test_redaction_keys(tmp_path, podman_url, toml, visible, masked):
    out = run(tmp_path, podman_url, toml, LEAKY).stdout
    assert all(v in out for v in visible), out
    assert not any(m in out for m in masked), out


# -- audit -------------------------------------------------------------------------
def test_audit_logging_off_writes_no_trail(tmp_path, podman_url):
    with CleanroomEnvironment(CleanroomConfig.from_toml(SP + "enable_audit_logging = false\n"), url=podman_url,
                              audit_dir=tmp_path / "off") as env:
        env.run(BUSYBOX, ["/bin/true"])
        assert env.audit_path is None
    assert not (tmp_path / "off").exists() or list((tmp_path / "off").iterdir()) == []


def test_audit_log_dir_is_where_the_trail_goes(tmp_path, podman_url, monkeypatch):
    monkeypatch.delenv("CLEANROOM_AUDIT_DIR", raising=False)
    trail = tmp_path / "trail"
    with CleanroomEnvironment(CleanroomConfig.from_toml(SP + f'audit_log_dir = "{trail}"\n'), url=podman_url) as env:
        env.run(BUSYBOX, ["/bin/true"])
    assert Path(env.audit_path).parent == trail and [p.name for p in trail.iterdir()] == [f"{env.id}.jsonl"]


def test_audit_hmac_key_env_keys_the_chain(tmp_path, podman_url, monkeypatch):
    toml = SP + 'audit_hmac_key_env = "CLEANROOM_TEST_AUDIT_KEY"\n'
    monkeypatch.delenv("CLEANROOM_TEST_AUDIT_KEY", raising=False)
    with pytest.raises(PolicyError) as info:  # the key must be there before anything runs
        CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path).open()
    assert "CLEANROOM_TEST_AUDIT_KEY" in str(info.value)
    monkeypatch.setenv("CLEANROOM_TEST_AUDIT_KEY", "test-only-audit-key-0123456789")
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        env.run(BUSYBOX, ["/bin/true"])
    assert verify_audit_log(env.audit_path, key=b"test-only-audit-key-0123456789").ok
    assert not verify_audit_log(env.audit_path).ok  # unkeyed SHA-256 does not reproduce it
    assert not verify_audit_log(env.audit_path, key=b"another-key").ok


# -- timeouts and the environment's CPU budget ---------------------------------------
def test_test_execution_timeout_is_the_default_limit_of_one_sandbox(tmp_path, podman_url):
    # test_execution_timeout bounds each sandbox; the per-test wall clock is
    # resource_limits.max_test_execution_time (tests/integration/test_test_time_limits.py).
    # Margins wide enough for a loaded 2-core machine: 2.5 s commands under a 4 s limit.
    cfg = CleanroomConfig.from_toml("[cleanroom]\ntest_execution_timeout = 4\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        start = time.monotonic()
        with pytest.raises(TimeoutExceeded) as info:
            env.run(BUSYBOX, ["/bin/sleep", "30"])
        assert info.value.timeout == 4 and time.monotonic() - start < 15
        # A test doing several short sandboxes (5 s together) is not bound by the per-sandbox limit.
        outcome = env.execute_test("two sandboxes", lambda: [env.run(BUSYBOX, ["/bin/sleep", "2.5"])
                                                             for _ in range(2)])
        assert outcome.verdict == "passed", outcome.error


def test_container_startup_timeout_bounds_a_services_wait(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\ncontainer_startup_timeout = 2\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        start = time.monotonic()
        with pytest.raises(ContainerError) as info:
            env.get_or_create_container("never", lambda: GenericContainer(
                BUSYBOX, ["/bin/sh", "-c", "echo waiting; sleep 60"], wait=LogMatches("never printed")))
        assert "not ready after 2 s" in str(info.value) and time.monotonic() - start < 15


def test_the_environment_cpu_budget_holds_its_sandboxes(tmp_path, podman_url):
    # The budget is a share of the whole host: half a core on any machine.
    share = 50.0 / (os.cpu_count() or 1)
    hog = ("end=$(($(date +%s) + 3)); for n in 1 2; do (while [ $(date +%s) -lt $end ]; do :; done) & done; "
           "wait; echo spun")
    r = run(tmp_path, podman_url, f"[cleanroom.resource_limits]\nmax_cpu_usage_percent = {share}\n", hog)
    assert r.stdout == "spun\n" and r.usage.cpu_limit_percent is None  # no per-sandbox quota: the budget binds
    assert r.usage.cpu_seconds <= 0.55 * r.duration_seconds, (r.usage.cpu_seconds, r.duration_seconds)
    assert r.usage.cpu_seconds >= 0.3 * 3


def test_memory_swap_bytes_is_written_and_read_back(tmp_path, podman_url):
    toml = '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "64MiB"\nmemory_swap_bytes = "96MiB"\n'
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        env.run(BUSYBOX, ["/bin/true"])
        limits = [r for r in audit_records(env.audit_path) if r["event"] == "sandbox.confined"][0]["data"]
    applied = limits["cgroup"]["limits"]
    # cgroup v1: memory+swap; v2: the swap part alone.
    assert applied.get("memory.memsw.limit_in_bytes") == 96 * MiB or applied.get("memory.swap.max") == 32 * MiB, \
        applied
