"""The warm path on real Podman and PostgreSQL: adopting a running singleton without
touching networks, joining the environment network only when a sandbox needs it, and
the queue of per-test databases (isolation, refill, background drops, nothing left)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psycopg
import pytest
from podman_helpers import BUSYBOX, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, GenericContainer, PostgresContainer
from sandbox.services import LogMatches, TestDatabase
from sandbox.services.pg_queue import PREFIX

SINGLETONS = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = true\n")
OWNED = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
SERVER = ["/bin/sh", "-c", "echo listening; while true; do echo hello-from-warm | nc -l -p 5000; done"]


def _networks(api) -> list[str]:
    return [n["name"] for n in api.get("/networks/json").json()]


def _remove_singleton(api, name: str) -> None:
    for c in containers_with_label(api, f"io.cleanroom.singleton={name}"):
        api.delete(f"/containers/{c['Id']}", params={"force": True, "timeout": 0})


def test_an_adopted_singleton_joins_the_environment_network_only_when_a_sandbox_needs_it(tmp_path, podman_url,
                                                                                          podman_api):
    name = "warm-it-srv"  # this test's own singleton, removed at the end
    _remove_singleton(podman_api, name)
    try:
        with CleanroomEnvironment(SINGLETONS, url=podman_url, audit_dir=tmp_path) as first:
            made = first.get_or_create_container(name, lambda: GenericContainer(
                BUSYBOX, SERVER, wait=LogMatches("listening")))
            assert not made.reused
        with CleanroomEnvironment(SINGLETONS, url=podman_url, audit_dir=tmp_path) as env:
            svc = env.get_or_create_container(name, lambda: GenericContainer(
                BUSYBOX, SERVER, wait=LogMatches("listening")))
            assert svc.reused and svc.is_running()
            network = f"cleanroom-{env.id}"
            assert network not in _networks(podman_api)  # adoption alone made no network
            r = env.run(BUSYBOX, ["/bin/sh", "-c", "nc -w 3 warm-it-srv 5000"], network="env")
            assert r.stdout == "hello-from-warm\n"  # attached when the sandbox needed the network
            assert network in _networks(podman_api)
        assert network not in _networks(podman_api)
        assert len(containers_with_label(podman_api, f"io.cleanroom.singleton={name}")) == 1  # still running
    finally:
        _remove_singleton(podman_api, name)


@pytest.fixture(scope="module")
def pg(tmp_path_factory, podman_url):
    with CleanroomEnvironment(OWNED, url=podman_url, audit_dir=tmp_path_factory.mktemp("audit")) as env:
        pg = env.get_or_create_container("warm-it-pg", lambda: PostgresContainer("warm", "warm", "warm-Secret-5521"))
        pg.create_database("warm_tmpl")
        with pg.connect("warm_tmpl", autocommit=True) as conn:
            conn.execute("CREATE TABLE base (id int); INSERT INTO base VALUES (1)")
        yield pg


def _queue_databases(pg, pid: int = os.getpid()) -> set[str]:
    rows = pg.execute_query("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{PREFIX}{pid}\\_%",))
    return {r[0] for r in rows}


def test_queued_databases_are_isolated_clones_of_the_template_and_the_queue_refills(pg):
    q = pg.database_queue("warm_tmpl", depth=2)
    assert q.wait_ready(2)
    a, b = TestDatabase(pg, "warm_tmpl", queue=q), TestDatabase(pg, "warm_tmpl", queue=q)
    assert a.name != b.name and a.name.startswith(f"{PREFIX}{os.getpid()}_")
    a.execute_sql("CREATE TABLE mine (x int)")
    assert a.execute_query("SELECT count(*) FROM base") == [["1"]]  # the template's content
    assert b.execute_query("SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") == [["0"]]
    assert q.wait_ready(2)  # both taken, both replaced
    assert q.clones_made >= 4
    a.drop()
    b.drop()
    assert q.wait_dropped()
    assert not pg.database_exists(a.name) and not pg.database_exists(b.name)


def test_a_drop_ends_connections_the_test_left_open(pg):
    q = pg.database_queue("warm_tmpl", depth=2)
    db = TestDatabase(pg, "warm_tmpl", queue=q)
    leaked = db.connect()  # the test forgot to close this one
    db.drop()
    assert q.wait_dropped()
    assert not pg.database_exists(db.name)
    assert _dead(leaked)


def _dead(conn) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.Error:
        return True
    return False


def test_closing_leaves_no_queued_database_behind(pg):
    q = pg.database_queue("warm_tmpl")  # the queue the tests above used, depth 2
    assert q.wait_ready()
    taken = TestDatabase(pg, "warm_tmpl", queue=q)
    kept_by_test = TestDatabase(pg, "warm_tmpl", queue=q)
    taken.drop()
    assert _queue_databases(pg)  # queued ones exist while the queue is open
    pg.release()  # what the environment's close does for a container that stays running
    left = _queue_databases(pg)
    # Only the database a test still holds (not given back) may remain; the queue's own are gone.
    assert left <= {kept_by_test.name}, left
    pg.drop_database(kept_by_test.name)
    assert not _queue_databases(pg)


def test_a_missing_template_is_a_clear_error_for_the_test(pg):
    q = pg.database_queue("warm_no_such_template", depth=1)
    with pytest.raises(ContainerError, match="warm_no_such_template"):
        q.take(timeout=30)
    q.close()


def test_a_killed_processs_queued_databases_are_swept_unless_in_use(pg):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    stale, busy = f"{PREFIX}{pid}_aaaaaaaaaaaa", f"{PREFIX}{pid}_bbbbbbbbbbbb"
    pg.create_database(stale, "warm_tmpl")
    pg.create_database(busy, "warm_tmpl")
    with pg.connect(busy):
        q = pg.database_queue("warm_tmpl", depth=1)
        q.discard(q.take())  # the dropper sweeps before its first drop: once this one is gone, so is the sweep
        assert q.wait_dropped()
        assert not pg.database_exists(stale)
        assert pg.database_exists(busy)  # someone is connected: not stale after all
    pg.drop_database(busy)
    pg.release()


def test_the_plugin_hands_out_queued_databases_and_leaves_none(tmp_path):
    """postgres_db through the plugin, default template: isolated, and the run leaves none of its clones."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_q.py").write_text(textwrap.dedent('''
        import os

        def test_pid():
            with open(os.environ["WARM_OUT"], "w") as f:
                f.write(str(os.getpid()))

        def test_one(postgres_db):
            assert postgres_db.name.startswith("cleanroom_q_")
            postgres_db.execute_sql("CREATE TABLE mine (x int)")

        def test_two(postgres_db):
            assert postgres_db.execute_query("SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") == [["0"]]
    '''))
    out = tmp_path / "pid"
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite)], capture_output=True, text=True, cwd=suite, timeout=300,
                       env={**os.environ, "WARM_OUT": str(out)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout
    pid = int(out.read_text())
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f'''
        def test_left(postgres):
            rows = postgres.execute_query("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                          ("cleanroom\\\\_q\\\\_{pid}\\\\_%",))
            assert rows == []
            assert postgres.database_exists("cleanroom_template_empty")
    '''))
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(probe)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
