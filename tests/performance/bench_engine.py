"""Cold sandbox run: cleanroom's engine vs `podman run --rm`, same image, same command.

Both sides get the same isolation (network none, read-only root, all capabilities
dropped, no-new-privileges), run interleaved so drift hits both equally, and the
medians and their ratio are printed. cleanroom returns before its container is removed;
that removal is let finish (untimed) before the CLI is timed. Target: engine ≤ 1.0× the CLI.
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
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "20"))


def _cli_once() -> float:
    t = time.perf_counter()
    out = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
         "--security-opt", "no-new-privileges", IMAGE, *CMD],
        capture_output=True, text=True, check=True,
    ).stdout
    elapsed = time.perf_counter() - t
    assert out == "hello\n"
    return elapsed


def test_cold_sandbox_engine_vs_podman_cli(tmp_path):
    assert shutil.which("podman"), "the podman CLI is the baseline"
    config = CleanroomConfig.from_toml(
        "[cleanroom.security_policy]\nsecurity_level = \"Maximum\"\naudit_level = \"Minimal\"\n"
    )
    engine, cli = [], []
    with CleanroomEnvironment(config, audit_dir=tmp_path) as env:
        env.run(IMAGE, CMD)  # warm the connection and the image cache for both
        _cli_once()
        for _ in range(ROUNDS):
            t = time.perf_counter()
            r = env.run(IMAGE, CMD)
            engine.append(time.perf_counter() - t)
            assert r.stdout == "hello\n"
            env._runner.drain()  # its removal runs after the result: finished, untimed, before the CLI is timed
            cli.append(_cli_once())
    e, c = statistics.median(engine), statistics.median(cli)
    print(f"\ncold sandbox (create→start→output; its removal follows the result), {ROUNDS} rounds, medians:")
    print(f"  cleanroom engine : {e * 1000:7.1f} ms  (p90 {sorted(engine)[int(ROUNDS * 0.9) - 1] * 1000:.1f})")
    print(f"  podman run --rm  : {c * 1000:7.1f} ms  (p90 {sorted(cli)[int(ROUNDS * 0.9) - 1] * 1000:.1f})")
    print(f"  ratio engine/cli : {e / c:.2f}x  (target ≤ 1.00x)")
