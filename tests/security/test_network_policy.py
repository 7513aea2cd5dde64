"""Network rules from the policy, proven inside real network namespaces.

No test sends a packet off this machine: blocked addresses are refused by an
`unreachable` route inside the sandbox (read back before the command ever runs),
and the bandwidth sink listens on this host's loopback.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer, NetworkPolicyViolation
from sandbox.confine import leftover_cgroups

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, REPO, SERVICES, containers_with_label  # noqa: E402

CONNECT = """
import errno, socket, sys, time
t = time.monotonic()
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(5)
try:
    s.connect((sys.argv[1], 80))
    print("connected")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), round(time.monotonic() - t, 3))
"""


@pytest.fixture(autouse=True)
def host_unharmed(podman_url, tmp_path):
    """After every test: a confined sandbox still runs and nothing of ours is left."""
    yield
    with CleanroomEnvironment(CleanroomConfig.default(), url=podman_url, audit_dir=tmp_path / "after") as env:
        r = env.run(BUSYBOX, ["/bin/echo", "still fine"])
        assert r.exit_code == 0 and r.stdout == "still fine\n"
        assert r.usage.memory_limit_bytes is not None  # still confined by its cgroup
    assert leftover_cgroups(os.getpid()) == []


def audit_records(env) -> list[dict]:
    return [json.loads(line) for line in Path(env.audit_path).read_text().splitlines()]


def test_loopback_only_sandbox_has_only_lo(tmp_path, podman_url):
    cfg = CleanroomConfig.from_file(REPO / "policies" / "strict.toml")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"])
        confined = [x for x in audit_records(env) if x["event"] == "sandbox.confined"]
    assert r.stdout.split() == ["lo"]
    assert confined[0]["data"]["network"] == {"mode": "none", "interfaces": ["lo"]}


def test_port_outside_allowed_ports_is_refused_before_creation(tmp_path, podman_url, podman_api):
    cfg = CleanroomConfig.from_toml("[cleanroom.security_policy]\nallowed_ports = [5432]\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        with pytest.raises(NetworkPolicyViolation) as info:
            GenericContainer(BUSYBOX, ["/bin/sleep", "30"], ports=[8080]).start(env)
        assert "8080" in str(info.value)
        assert containers_with_label(podman_api, f"io.cleanroom.environment={env.id}") == []
        # At the default Medium level refusals are not audited; at High they are (below).
        assert not any(x["event"] == "network.refused" for x in audit_records(env))
    cfg = CleanroomConfig.from_toml('[cleanroom.security_policy]\nallowed_ports = [5432]\naudit_level = "High"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        with pytest.raises(NetworkPolicyViolation):
            GenericContainer(BUSYBOX, ["/bin/sleep", "30"], ports=[8080]).start(env)
        assert any(x["event"] == "network.refused" for x in audit_records(env))


def test_blocked_cidr_is_refused_at_once_inside_the_sandbox(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml(
        '[cleanroom.security_policy]\nenable_network_isolation = false\n'
        'blocked_addresses = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]\n'
    )
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(SERVICES, ["python3", "-c", CONNECT, "10.255.255.1"])
        confined = [x for x in audit_records(env) if x["event"] == "sandbox.confined"][0]["data"]["network"]
    # The route was read back before start; the sandbox never ran without it.
    unreachable = {rt["dst"] for rt in confined["routes"] if rt["type"] == "unreachable"}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= unreachable
    code, elapsed = r.stdout.split()
    assert code in ("EHOSTUNREACH", "ENETUNREACH", "EACCES"), r.stdout
    assert float(elapsed) < 0.5


class _Sink:
    """A TCP sink on this host's loopback, counting bytes and their arrival span."""

    def __init__(self) -> None:
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.srv.settimeout(30)
        self.port = self.srv.getsockname()[1]
        self.bytes = 0
        self.span = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.srv.accept()
        first = last = None
        while True:
            data = conn.recv(65536)
            if not data:
                break
            now = time.monotonic()
            first = first or now
            last = now
            self.bytes += len(data)
        conn.close()
        self.srv.close()
        self.span = (last or 0) - (first or 0)


def test_allowlist_routes_only_the_listed_networks(tmp_path, podman_url):
    sink = _Sink()
    cfg = CleanroomConfig.from_toml(
        '[cleanroom.security_policy]\nenable_network_isolation = false\nnetwork_mode = "allowlist"\n'
        'allowed_addresses = ["10.0.2.2/32"]\nallow_host_loopback = true\n'
    )
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        # One sandbox tries both families: slirp4netns also gives IPv6 a default route
        # (by router advertisement), which the allow-list must take away too.
        refused = env.run(SERVICES, ["sh", "-c", f"python3 -c '{CONNECT}' 192.0.2.1; "
                                                 f"python3 -c '{CONNECT}' 2001:db8::1"])
        network = [x for x in audit_records(env) if x["event"] == "sandbox.confined"][0]["data"]["network"]
        allowed = env.run(BUSYBOX, ["/bin/sh", "-c", f"echo hello | nc 10.0.2.2 {sink.port}; echo rc=$?"])
    # Read back before start: no default route is left in either family, both are refused.
    defaults = {(r["family"], r["type"]) for r in network["routes"] if r["dst"] == "default"}
    assert defaults == {("inet", "unreachable"), ("inet6", "unreachable")}, network["routes"]
    assert network["allowed"] == ["10.0.2.2/32"] and network["mode"] == "allowlist"
    for line in refused.stdout.splitlines():
        code, elapsed = line.split()
        assert code in ("EHOSTUNREACH", "ENETUNREACH", "EACCES"), refused.stdout
        assert float(elapsed) < 0.5
    assert len(refused.stdout.splitlines()) == 2, refused.stdout + refused.stderr
    assert "rc=0" in allowed.stdout
    sink.thread.join(5)
    assert sink.bytes == len("hello\n")


SINK = r"""
import socket, time
srv = socket.socket(); srv.bind(("0.0.0.0", 5000)); srv.listen(1); print("sink ready", flush=True)
conn, _ = srv.accept(); n = 0; first = last = None
while True:
    data = conn.recv(65536)
    if not data:
        break
    last = time.monotonic(); first = first or last; n += len(data)
conn.close()
print(f"received {n} bytes in {last - first:.3f} s", flush=True)
time.sleep(60)
"""


def test_bandwidth_limit_shapes_egress_to_a_sink_on_the_environment_network(tmp_path, podman_url):
    from sandbox import GenericContainer
    from sandbox.services import LogMatches

    cfg = CleanroomConfig.from_toml(
        '[cleanroom]\nenable_singleton_containers = false\n'
        '[cleanroom.resource_limits]\nmax_network_bandwidth_bytes_per_sec = "1MiB"\n'
    )
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        sink = env.get_or_create_container("sink", lambda: GenericContainer(
            SERVICES, ["python3", "-c", SINK], wait=LogMatches("sink ready")))
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "head -c 4194304 /dev/zero | nc -w 1 sink 5000"], network="env",
                    timeout=60)
        assert r.exit_code == 0, r.stderr
        shaped = [x for x in audit_records(env) if x["event"] == "sandbox.confined"][-1]["data"]["network"]["shaped"]
        deadline = time.monotonic() + 10
        while "received" not in sink.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        received, seconds = sink.logs().split("received ")[1].split(" bytes in ")
    assert int(received) == 4 * 1024 * 1024
    rate = int(received) / float(seconds.split()[0])
    assert shaped == {"device": "eth0", "bytes_per_sec": 1024 * 1024}
    assert 0.75 * 1024 * 1024 <= rate <= 1.25 * 1024 * 1024, rate


def test_services_of_one_environment_reach_each_other_privately(tmp_path, podman_url, podman_api):
    from sandbox import GenericContainer
    from sandbox.services import LogMatches

    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    server = ["/bin/sh", "-c", "echo listening; while true; do echo hello-from-srv | nc -l -p 5000; done"]
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env, \
            CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as other:
        env.get_or_create_container("srv", lambda: GenericContainer(BUSYBOX, server, wait=LogMatches("listening")))
        # A second service of the same environment reaches the first by its name ...
        client = env.get_or_create_container("client", lambda: GenericContainer(
            BUSYBOX, ["/bin/sh", "-c", "nc -w 3 srv 5000; sleep 60"], wait=LogMatches("hello-from-srv")))
        assert "hello-from-srv" in client.logs()
        # ... and so does a sandbox put on the environment's network.
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "nc -w 3 srv 5000"], network="env")
        assert r.stdout == "hello-from-srv\n"
        # Another environment's network does not know the name: nothing is sent anywhere.
        o = other.run(BUSYBOX, ["/bin/sh", "-c", "nc -w 3 srv 5000; echo rc=$?"], network="env")
        assert "bad address" in o.stderr and "rc=1" in o.stdout
        name = f"cleanroom-{env.id}"
    nets = [n["name"] for n in podman_api.get("/networks/json").json()]
    assert name not in nets  # removed with its environment
