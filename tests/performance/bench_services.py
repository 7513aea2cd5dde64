"""100 tests that each need a clean database: per-test template clones (postgres_db)
against a fresh PostgreSQL container per test, in the same run.

The fresh-container side runs FRESH_ROUNDS real containers (default 10) and
extrapolates its median to 100 tests, said so in the output; the clone side runs all
100. Targets: ≥ 20× faster, per-test isolation under 50 ms median.
"""

from __future__ import annotations

import os
import statistics
import time

from sandbox import CleanroomConfig, CleanroomEnvironment, PostgresContainer
from sandbox.services import TestDatabase

TESTS = 100
FRESH_ROUNDS = int(os.environ.get("CLEANROOM_BENCH_FRESH", "10"))
SCHEMA = "CREATE TABLE users (id serial PRIMARY KEY, name text); INSERT INTO users (name) VALUES ('seed')"


def one_test(execute_sql, execute_query) -> None:
    execute_sql("INSERT INTO users (name) VALUES ('x')")
    assert execute_query("SELECT count(*) FROM users") == [["2"]]


def test_per_test_database_vs_fresh_container(tmp_path):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    with CleanroomEnvironment(cfg, audit_dir=tmp_path) as env:
        pg = env.get_or_create_container("bench-pg", lambda: PostgresContainer("bench", "bench", "bench-pw"))
        pg.create_database("bench_template")
        with pg.connect("bench_template", autocommit=True) as conn:
            conn.execute(SCHEMA)
        isolation, per_test = [], []
        for _ in range(TESTS):
            t = time.perf_counter()
            db = TestDatabase(pg, "bench_template")
            isolation.append(time.perf_counter() - t)
            one_test(db.execute_sql, db.execute_query)
            db.drop()
            per_test.append(time.perf_counter() - t)

        fresh = []
        for _ in range(FRESH_ROUNDS):
            t = time.perf_counter()
            c = PostgresContainer("bench", "bench", "bench-pw")
            c.start(env)
            c.wait_for_ready()
            c.execute_sql(SCHEMA)
            one_test(c.execute_sql, c.execute_query)
            c.stop()
            fresh.append(time.perf_counter() - t)

    clone_total = sum(per_test)
    fresh_median = statistics.median(fresh)
    fresh_total = fresh_median * TESTS
    print(f"\n{TESTS} tests, each needing a clean database:")
    print(f"  per-test database (template clone + drop): total {clone_total:7.2f} s, "
          f"median {statistics.median(per_test) * 1000:.1f} ms/test")
    print(f"  fresh container per test: median {fresh_median:.2f} s/test over {FRESH_ROUNDS} real containers, "
          f"extrapolated to {TESTS}: {fresh_total:.1f} s")
    print(f"  ratio: {fresh_total / clone_total:.1f}x faster (target >= 20x)")
    print(f"  per-test isolation (clone only): median {statistics.median(isolation) * 1000:.1f} ms "
          f"(target < 50 ms), p90 {sorted(isolation)[int(TESTS * 0.9)] * 1000:.1f} ms")
