"""What confinement costs a cold sandbox: the same run with and without it, interleaved.

Prints the medians of whole runs and of the confinement step alone (init → confined,
timed inside the engine), for a loopback-only sandbox (cgroups + namespace check) and
an egress sandbox (cgroups + routes installed in its namespace). Target: ≤ 60 ms added.
"""

from __future__ import annotations

import os
import statistics
import time

from sandbox import CleanroomConfig, CleanroomEnvironment

IMAGE = "localhost/cleanroom/busybox:latest"
CMD = ["/bin/true"]
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "20"))
POLICIES = {
    "loopback-only": "[cleanroom]\n",
    "egress + 3 blocked CIDRs": ('[cleanroom.security_policy]\nenable_network_isolation = false\n'
                                 'blocked_addresses = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]\n'),
}


def test_confinement_cost(tmp_path):
    print(f"\nconfinement cost, {ROUNDS} interleaved rounds each (medians):")
    for label, toml in POLICIES.items():
        cfg = CleanroomConfig.from_toml(toml)
        with CleanroomEnvironment(cfg, audit_dir=tmp_path) as confined, \
                CleanroomEnvironment(cfg, audit_dir=tmp_path, confine=False) as bare:
            confined.run(IMAGE, CMD)
            bare.run(IMAGE, CMD)
            with_c, without_c, step = [], [], []
            for _ in range(ROUNDS):
                t = time.perf_counter()
                r = confined.run(IMAGE, CMD)
                with_c.append(time.perf_counter() - t)
                step.append(r.confine_seconds)
                assert r.usage.peak_memory_bytes is not None  # really confined
                t = time.perf_counter()
                bare.run(IMAGE, CMD)
                without_c.append(time.perf_counter() - t)
        w, b, s = (statistics.median(x) * 1000 for x in (with_c, without_c, step))
        print(f"  {label:26s} with {w:6.1f} ms · without {b:6.1f} ms · ratio {w / b:.2f}x · "
              f"added {w - b:+5.1f} ms · confinement step {s:5.1f} ms (target ≤ 60 ms)")
