"""enable_process_isolation on real rootless Podman: on, a sandbox sees only its own
processes and has its own IPC namespace; off (allowed below High), it sees the host's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox import CleanroomConfig, CleanroomEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX  # noqa: E402

# The numeric entries of /proc are the PIDs the sandbox can see; then its namespaces.
LOOK = "ls /proc | grep -E '^[0-9]+$' | wc -l; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc"


def look(tmp_path, podman_url, toml: str) -> tuple[int, str, str]:
    with CleanroomEnvironment(CleanroomConfig.from_toml(toml), url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", LOOK])
    assert r.exit_code == 0, r.stderr
    count, pidns, ipcns = r.stdout.split()
    return int(count), pidns, ipcns


def test_process_isolation_on_shows_only_the_sandboxes_own_processes(tmp_path, podman_url):
    count, pidns, ipcns = look(tmp_path, podman_url, "[cleanroom.security_policy]\nenable_process_isolation = true\n")
    # sh, ls, grep, wc (and readlink later): a handful, never the host's table.
    assert count <= 6, count
    assert pidns != os.readlink("/proc/self/ns/pid")
    assert ipcns != os.readlink("/proc/self/ns/ipc")


def test_process_isolation_off_at_low_sees_the_host_processes(tmp_path, podman_url):
    host_pids = sum(1 for p in os.listdir("/proc") if p.isdigit())
    count, pidns, ipcns = look(tmp_path, podman_url, '[cleanroom.security_policy]\nsecurity_level = "Low"\n'
                                                     "enable_process_isolation = false\n")
    assert pidns == os.readlink("/proc/self/ns/pid")  # the host's PID namespace
    assert count >= min(host_pids, 20), (count, host_pids)  # the host's process table, not a handful
    assert ipcns != os.readlink("/proc/self/ns/ipc")  # IPC stays private (see spec.py)
