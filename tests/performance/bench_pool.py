"""The warm pool and the cold path, side by side in one run, medians, p90 and ratios.

- warm pooled sandbox (trivial command, output back) vs the floor: `runc run` of a
  prepared bundle (the OCI runtime alone, rootless, same rootfs), and `podman exec`
  into a running container. Targets: ≤ 30 ms median, ≤ 1.5× the runc floor.
- cold sandbox (pool off) vs `podman run --rm` with the same isolation. Target ≤ 0.5×.
- 200 sandboxes from 8 threads, pool on vs off: throughput ratio; no leftovers after.

Rounds interleave every side so drift hits all of them alike. cleanroom removes a
finished sandbox after returning its result, and a pool refills in the background:
before each timed call that work is let finish (not timed), so no side is measured
while another side's leftovers still run — the figures are a single caller's latency
(an edit loop). The 8-thread row shows what happens when callers outrun the refill.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sandbox import CleanroomConfig, CleanroomEnvironment
from sandbox.engine.teardown.ownership import LABEL_OWNER_PID

IMAGE = "localhost/cleanroom/busybox:latest"
CMD = ["/bin/echo", "hello"]
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "30"))
POLICY = ("[cleanroom.security_policy]\nsecurity_level = \"Maximum\"\naudit_level = \"Minimal\"\n"
          "[cleanroom.resource_limits]\nmax_container_count = 16\n")
ISOLATION = ["--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _check(out: str) -> None:
    assert out == "hello\n", out


def _stats(name: str, xs: list[float]) -> float:
    m = statistics.median(xs)
    p90 = sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]
    print(f"  {name:<34}: {m * 1000:7.1f} ms  (p90 {p90 * 1000:.1f})")
    return m


def _settle(env: CleanroomEnvironment) -> None:
    """Background work of earlier runs done (removals; a pool back to full): one caller at a
    time, and no side measured while another side's leftovers still run."""
    pool = env._runner.pool
    deadline = time.monotonic() + 10
    while pool is not None and pool.idle() < pool.size and time.monotonic() < deadline:
        time.sleep(0.005)
    env._runner.drain()
    time.sleep(0.02)


def _runc_bundle(root: Path) -> Path:
    """A rootless OCI bundle of the same image: its rootfs exported by podman, `runc spec --rootless`."""
    bundle = root / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    cid = subprocess.run(["podman", "create", IMAGE], capture_output=True, text=True, check=True).stdout.strip()
    try:
        export = subprocess.Popen(["podman", "export", cid], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(bundle / "rootfs")], stdin=export.stdout, check=True)
        export.wait()
    finally:
        subprocess.run(["podman", "rm", "-f", cid], capture_output=True)
    subprocess.run(["runc", "spec", "--rootless"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = CMD
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = True
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def _runc_once(bundle: Path, state: Path, n: int) -> None:
    out = subprocess.run(["runc", "--root", str(state), "run", "-b", str(bundle), f"cleanroom-bench-{os.getpid()}-{n}"],
                         capture_output=True, text=True, check=True).stdout
    _check(out)


def test_warm_pooled_sandbox_vs_runc_floor_and_podman_exec(tmp_path):
    assert shutil.which("podman") and shutil.which("runc"), "podman and runc are the baselines"
    bundle = _runc_bundle(tmp_path)
    state = Path(tempfile.mkdtemp(prefix="runc-bench-", dir=os.environ.get("XDG_RUNTIME_DIR")))
    config = CleanroomConfig.from_toml(POLICY + "[cleanroom.pool]\nsize = 2\n")
    box = subprocess.run(["podman", "run", "-d", *ISOLATION, IMAGE, "sleep", "600"], capture_output=True,
                         text=True, check=True).stdout.strip()
    warm, runc, podman_exec = [], [], []
    try:
        with CleanroomEnvironment(config, audit_dir=tmp_path / "audit") as env:
            env.run(IMAGE, CMD)  # the first asks: the pool fills from here
            pool = env._runner.pool
            for n in range(ROUNDS):
                _settle(env)
                warm.append(_timed(lambda: _check(env.run(IMAGE, CMD).stdout)))
                _settle(env)  # the refill and the removal must not slow the baselines down
                runc.append(_timed(lambda n=n: _runc_once(bundle, state, n)))
                podman_exec.append(_timed(lambda: _check(subprocess.run(
                    ["podman", "exec", box, *CMD], capture_output=True, text=True, check=True).stdout)))
            taken = pool.made
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", box], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
    print(f"\nwarm pooled sandbox, trivial command, output back, {ROUNDS} rounds (pool members made: {taken}):")
    w = _stats("cleanroom env.run, pooled", warm)
    r = _stats("runc run of a prepared bundle", runc)
    p = _stats("podman exec (running container)", podman_exec)
    print(f"  ratio pooled/runc floor           : {w / r:.2f}x  (target ≤ 1.50x, and ≤ 30 ms median)")
    print(f"  ratio pooled/podman exec          : {w / p:.2f}x")


def test_cold_sandbox_vs_podman_run(tmp_path):
    config = CleanroomConfig.from_toml(POLICY)
    cold, cli = [], []
    with CleanroomEnvironment(config, audit_dir=tmp_path) as env:
        env.run(IMAGE, CMD)
        for _ in range(ROUNDS):
            _settle(env)
            cold.append(_timed(lambda: _check(env.run(IMAGE, CMD).stdout)))
            _settle(env)  # its removal runs after the result: not while the CLI is timed
            cli.append(_timed(lambda: _check(subprocess.run(["podman", "run", "--rm", *ISOLATION, IMAGE, *CMD],
                                                            capture_output=True, text=True, check=True).stdout)))
    rcu = Path("/sys/kernel/rcu_expedited")
    expedited = rcu.read_text().strip() if rcu.exists() else "n/a"
    print(f"\ncold sandbox (pool off), {ROUNDS} rounds (host rcu_expedited={expedited}; see `cleanroom doctor`):")
    c = _stats("cleanroom env.run, cold", cold)
    p = _stats("podman run --rm", cli)
    print(f"  ratio cold/cli                    : {c / p:.2f}x  (target ≤ 0.50x)")


def _burst(env: CleanroomEnvironment, total: int, threads: int) -> float:
    left = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            try:
                _check(env.run(IMAGE, CMD).stdout)
            except BaseException as exc:  # reported below: a bench must not hide a failure
                errors.append(exc)
                return

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t
    assert not errors, errors[0]
    return elapsed


def test_two_hundred_sandboxes_from_eight_threads_pool_on_vs_off(tmp_path, podman_api):
    total, threads = int(os.environ.get("CLEANROOM_BENCH_BURST", "200")), 8
    times = {}
    for label, pool in (("pool off", ""), ("pool on (size 4)", "[cleanroom.pool]\nsize = 4\n")):
        config = CleanroomConfig.from_toml(POLICY + pool)
        with CleanroomEnvironment(config, audit_dir=tmp_path / label.split()[1]) as env:
            env.run(IMAGE, CMD)
            if env._runner.pool is not None:
                deadline = time.monotonic() + 10
                while env._runner.pool.idle() < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
            times[label] = _burst(env, total, threads)
    mine = json.dumps({"label": [f"{LABEL_OWNER_PID}={os.getpid()}"]})
    left = podman_api.get("/containers/json", params={"all": True, "filters": mine}).json() or []
    assert left == [], f"leftover containers: {[c['Names'] for c in left]}"
    print(f"\n{total} sandboxes from {threads} threads (max_container_count 16):")
    for label, t in times.items():
        print(f"  {label:<34}: {t:6.2f} s  ({total / t:5.1f} sandboxes/s)")
    off, on = times["pool off"], times["pool on (size 4)"]
    print(f"  throughput ratio on/off           : {off / on:.2f}x  (no leftovers after either)")
