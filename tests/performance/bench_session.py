"""Exec in a session vs `podman exec` on the same container, in the same run.

One session is opened; each round runs the same command once through `sb.exec`
(the session's agent forks it already inside the sandbox's cgroup and relays its
output over the attach channel kept open for the session; output redacted, usage read
from the cgroup before and after, audited) and once through `podman exec` on that very
container (neither confined nor redacted), interleaved so drift hits both. Medians and
their ratio are printed. Target: session exec ≤ 0.5× the CLI (the CLI pays a process
start, its own connection and the exec API's create/start/inspect per call; the agent
pays none of these).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time

from sandbox import CleanroomConfig, CleanroomEnvironment

IMAGE = "localhost/cleanroom/busybox:latest"
CMD = ["/bin/sh", "-c", "echo hello"]
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "30"))


def _cli_once(cid: str) -> float:
    t = time.perf_counter()
    out = subprocess.run(["podman", "exec", cid, *CMD], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t
    assert out == "hello\n"
    return elapsed


def test_session_exec_vs_podman_exec(tmp_path):
    assert shutil.which("podman"), "the podman CLI is the baseline"
    config = CleanroomConfig.from_toml(
        "[cleanroom.security_policy]\nsecurity_level = \"Maximum\"\naudit_level = \"Minimal\"\n"
    )
    session, cli = [], []
    with CleanroomEnvironment(config, audit_dir=tmp_path) as env:
        with env.session(IMAGE) as sb:
            cid = sb._made.handle.id
            sb.exec(CMD)  # warm both paths
            _cli_once(cid)
            for _ in range(ROUNDS):
                t = time.perf_counter()
                r = sb.exec(CMD)
                session.append(time.perf_counter() - t)
                assert r.stdout == "hello\n"
                cli.append(_cli_once(cid))
    s, c = statistics.median(session), statistics.median(cli)
    p90 = int(ROUNDS * 0.9) - 1
    print(f"\nexec in a running sandbox, {ROUNDS} rounds, same container, interleaved; medians:")
    print(f"  cleanroom sb.exec (agent) : {s * 1000:7.1f} ms  (p90 {sorted(session)[p90] * 1000:.1f})")
    print(f"  podman exec (CLI)         : {c * 1000:7.1f} ms  (p90 {sorted(cli)[p90] * 1000:.1f})")
    print(f"  ratio session/cli         : {s / c:.3f}x  (target ≤ 0.50x)")
    assert s / c <= 0.5, f"session exec is {s / c:.2f}x podman exec, over the 0.5x target"
