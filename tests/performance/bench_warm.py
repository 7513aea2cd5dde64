"""The warm path, side by side with the code before it (issue 15), in one run.

Three rows, each measured in fresh processes, alternating this tree and the baseline
tree (``git archive`` of BASELINE, today's code path before the warm work):

* opening a CleanroomEnvironment (import reported separately, then open, then close);
* the first test's ``postgres_db`` + ``redis_client`` set-up with the singletons already
  running, as pytest sees it (a conftest times every fixture; the engine is imported
  before the test, and that import is reported on its own line);
* a test's ``postgres_db`` (set-up + teardown as pytest times them) over PER_TEST tests,
  against a fresh PostgreSQL container per test (FRESH_ROUNDS real ones).

The suites use their own singletons (``bench-warm-*``, one pair per tree), removed at
the end, so the baseline's template sweep never touches another suite's templates.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from podman import PodmanClient

from sandbox import CleanroomConfig, CleanroomEnvironment, PostgresContainer
from sandbox.engine.podman.connection import resolve_url

REPO = Path(__file__).resolve().parents[2]
BASELINE = os.environ.get("CLEANROOM_BENCH_BASELINE", "42eb263")  # the commit before the warm path
ROUNDS = int(os.environ.get("CLEANROOM_BENCH_ROUNDS", "5"))
PER_TEST = 40
FRESH_ROUNDS = int(os.environ.get("CLEANROOM_BENCH_FRESH", "5"))
# One pair of singletons per tree: the two trees' singleton identities may differ (the
# shared-services cgroup is part of it now), and one would replace the other's each round.
NAMES = tuple(f"bench-warm-{service}-{tag}" for service in ("postgres", "redis") for tag in ("new", "baseline"))

OPEN_SCRIPT = '''
import json, sys, time
t0 = time.perf_counter()
import sandbox.environment as m
from sandbox.policy import CleanroomConfig
t1 = time.perf_counter()
env = m.CleanroomEnvironment(CleanroomConfig.default(), audit_dir=sys.argv[1]).open()
t2 = time.perf_counter()
env.close()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "close": t3 - t2, "file": m.__file__}))
'''

CONFTEST = '''
import json, os, time
import pytest

t0 = time.perf_counter()
import sandbox.environment, sandbox.services.postgres, sandbox.services.redis  # timed apart from the set-up
IMPORT = time.perf_counter() - t0
T = {"import": IMPORT, "fixtures": {}, "setup": {}, "teardown": {}}

@pytest.fixture(scope="session")
def postgres(cleanroom):
    from sandbox.services import PostgresContainer
    return cleanroom.get_or_create_container("bench-warm-postgres-" + os.environ["WARM_TAG"],
                                             lambda: PostgresContainer("cleanroom", "cleanroom", "bench-warm-pw-1"))

@pytest.fixture(scope="session")
def redis(cleanroom):
    from sandbox.services import RedisContainer
    return cleanroom.get_or_create_container("bench-warm-redis-" + os.environ["WARM_TAG"],
                                             lambda: RedisContainer(password="bench-warm-pw-2"))

CURRENT = [""]

@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    t = time.perf_counter()
    yield
    T["fixtures"][f"{CURRENT[0]}:{fixturedef.argname}"] = time.perf_counter() - t  # session ones too

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    CURRENT[0] = item.name
    t = time.perf_counter()
    yield
    T["setup"][item.name] = time.perf_counter() - t

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    t = time.perf_counter()
    yield
    T["teardown"][item.name] = time.perf_counter() - t

def pytest_unconfigure(config):
    T["file"] = sandbox.environment.__file__
    with open(os.environ["WARM_OUT"], "w") as f:
        json.dump(T, f)
'''

TESTS = '''
def test_first(postgres_db, redis_client):
    assert postgres_db.execute_query("SELECT 1") == [["1"]]
    redis_client.set("k", "v")
''' + "".join(f'''
def test_db_{i:02d}(postgres_db):
    postgres_db.execute_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    assert postgres_db.execute_query("SELECT count(*) FROM t") == [["1"]]
''' for i in range(PER_TEST))


def _export_baseline(dest: Path) -> Path | None:
    git = ["git", "-c", "safe.directory=*", "-C", str(REPO), "archive", BASELINE, "sandbox"]
    r = subprocess.run(git, capture_output=True, timeout=60)
    if r.returncode != 0:
        print(f"  baseline {BASELINE} unavailable: {r.stderr.decode(errors='replace').strip()[:200]}")
        return None
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=r.stdout, check=True, timeout=60)
    return dest


def _run(tree: Path, args: list[str], cwd: Path, out: Path | None = None,
         tag: str = "new") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "WARM_TAG": tag}
    if out is not None:
        env["WARM_OUT"] = str(out)
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    return f"median {statistics.median(values) * 1000:7.1f} ms, p90 {p90 * 1000:7.1f} ms"


def _ratio(new: list[float], old: list[float]) -> str:
    return f"{statistics.median(old) / statistics.median(new):.1f}x less" if statistics.median(new) else "-"


def _remove_singletons() -> None:
    with PodmanClient(base_url=resolve_url()) as client:
        for name in NAMES:
            filters = json.dumps({"label": [f"io.cleanroom.singleton={name}"]})
            for c in client.api.get("/containers/json", params={"all": True, "filters": filters}).json() or []:
                client.api.delete(f"/containers/{c['Id']}", params={"force": True, "timeout": 0})


def _first_test_rows(trees: dict[str, Path], tmp_path: Path) -> dict[str, list[dict]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_warm.py").write_text(TESTS)
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for i in range(ROUNDS + 1):  # the first round of each only warms up (singletons, templates, page cache)
        for label, tree in trees.items():
            out = tmp_path / f"{label}-{i}.json"
            _run(tree, ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:xdist", str(suite)], suite, out,
                 tag=label)
            data = json.loads(out.read_text())
            assert data["file"].startswith(str(tree)), data["file"]
            if i:
                runs[label].append(data)
    return runs


def test_warm_path_against_the_baseline(tmp_path):
    trees = {"new": REPO}
    baseline = _export_baseline(tmp_path / "baseline")
    if baseline is not None:
        trees["baseline"] = baseline
    opened: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(ROUNDS):
        for label, tree in trees.items():
            r = _run(tree, ["-c", OPEN_SCRIPT, str(tmp_path / "audit")], tmp_path)
            opened[label].append(json.loads(r.stdout.strip().splitlines()[-1]))
    try:
        runs = _first_test_rows(trees, tmp_path)
    finally:
        _remove_singletons()

    fresh = []
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    with CleanroomEnvironment(cfg, audit_dir=tmp_path / "audit") as env:
        for _ in range(FRESH_ROUNDS):
            t = time.perf_counter()
            c = PostgresContainer("bench", "bench", "bench-fresh-pw")
            c.start(env)
            c.wait_for_ready()
            c.stop()
            fresh.append(time.perf_counter() - t)

    print(f"\nwarm path vs baseline {BASELINE} (today's code before issue 15), {ROUNDS} fresh processes each")
    print("opening a CleanroomEnvironment (new process):")
    for label in trees:
        o = opened[label]
        print(f"  {label:8s} import {_ms([x['import'] for x in o])} | open {_ms([x['open'] for x in o])} | "
              f"close {_ms([x['close'] for x in o])}")
    if "baseline" in trees:
        print(f"  open ratio: {_ratio([x['open'] for x in opened['new']], [x['open'] for x in opened['baseline']])}")

    print("first test's postgres_db + redis_client set-up, singletons running (target <= 0.3 s):")
    setups: dict[str, list[float]] = {}
    for label in trees:
        rs = runs[label]
        setups[label] = [r["setup"]["test_first"] for r in rs]
        print(f"  {label:8s} set-up {_ms(setups[label])} | engine import before it {_ms([r['import'] for r in rs])}")
        phases: dict[str, list[float]] = {}
        for r in rs:
            for key, v in r["fixtures"].items():
                if key.startswith("test_first:"):
                    phases.setdefault(key.split(":", 1)[1], []).append(v)
        print("           " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f}" for k, v in phases.items()) + " (ms)")
    if "baseline" in trees:
        print(f"  ratio: {_ratio(setups['new'], setups['baseline'])}")
    totals = {label: [r["import"] + r["setup"]["test_first"] for r in runs[label]] for label in trees}
    for label in trees:
        print(f"  {label:8s} import (engine and client libraries) + set-up {_ms(totals[label])}")
    if "baseline" in trees:
        print(f"  ratio of the totals: {_ratio(totals['new'], totals['baseline'])}")

    print(f"a test's postgres_db (set-up + teardown, {PER_TEST} tests per process; target <= 3 ms median):")
    per_test: dict[str, list[float]] = {}
    for label in trees:
        names = [(r, n) for r in runs[label] for n in r["setup"] if n != "test_first"]
        per_test[label] = [r["setup"][n] + r["teardown"][n] for r, n in names]
        fixture = [r["fixtures"][f"{n}:postgres_db"] for r, n in names]
        print(f"  {label:8s} {_ms(per_test[label])} | the postgres_db fixture's own set-up {_ms(fixture)}")
    print(f"  fresh container per test: {_ms(fresh)} over {FRESH_ROUNDS} real containers")
    print(f"  ratio vs fresh container: {_ratio(per_test['new'], fresh)}")
    if "baseline" in trees:
        print(f"  ratio vs baseline: {_ratio(per_test['new'], per_test['baseline'])}")
