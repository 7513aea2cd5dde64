"""Real PostgreSQL and Redis in confined containers: the guide's methods, singletons,
wait failures, secrets."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from podman_helpers import BUSYBOX, REPO, containers_with_label

from sandbox import (
    CleanroomConfig,
    CleanroomEnvironment,
    ContainerError,
    GenericContainer,
    PostgresContainer,
    RedisContainer,
)
from sandbox.services import LogMatches

PG_PASSWORD = "pg-Secret-7781"


@pytest.fixture(scope="module")
def env(tmp_path_factory, podman_url):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = true\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path_factory.mktemp("audit")) as e:
        yield e


@pytest.fixture(scope="module")
def pg(env):
    return env.get_or_create_container("it-postgres", lambda: PostgresContainer("testdb", "testuser", PG_PASSWORD))


def test_postgres_guide_methods(pg):
    pg.wait_for_ready()
    assert pg.is_healthy() and pg.is_connected()
    pg.execute_sql("DROP TABLE IF EXISTS t; CREATE TABLE t (id serial primary key, name text)")
    pg.execute_sql("INSERT INTO t (name) VALUES ('a'), ('b')")
    assert pg.execute_query("SELECT 1") == [["1"]]
    assert pg.execute_query("SELECT id, name FROM t ORDER BY id") == [["1", "a"], ["2", "b"]]
    assert pg.url().startswith("postgresql://testuser:") and "@127.0.0.1:" in pg.url()


def test_connection_pool_is_safe_from_many_threads(pg):
    results, errors = [], []
    with pg.create_connection_pool(5) as pool:
        def worker(i):
            try:
                results.append(pool.execute_query(f"SELECT {i}"))
            except Exception as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert not errors
    assert sorted(int(r[0][0]) for r in results) == list(range(50))


def test_singleton_is_reused_within_the_process(env, pg):
    again = env.get_or_create_container("it-postgres", lambda: PostgresContainer("testdb", "testuser", PG_PASSWORD))
    assert again is pg and again.reused


def test_singleton_is_reused_by_another_process(pg):
    code = (
        "from sandbox import CleanroomConfig, CleanroomEnvironment, PostgresContainer\n"
        "with CleanroomEnvironment(CleanroomConfig()) as env:\n"
        f"    c = env.get_or_create_container('it-postgres', lambda: PostgresContainer('testdb', 'testuser', {PG_PASSWORD!r}))\n"
        "    print(c.service.id, c.reused, c.execute_query('SELECT 1'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    cid, reused, rows = out.stdout.split(" ", 2)
    assert cid == pg.service.id and reused == "True" and rows.strip() == "[['1']]"
    assert pg.is_running()  # the other process did not remove it


def test_killed_singleton_is_replaced_on_next_use(env, podman_api):
    def make():
        return RedisContainer(password="redis-Secret-55")

    first = env.get_or_create_container("it-redis", make)
    assert first.client().ping()
    podman_api.post(f"/containers/{first.service.id}/kill", params={"signal": "SIGKILL"})
    second = env.get_or_create_container("it-redis", make)
    assert second.service.id != first.service.id and second.client().ping()
    assert len(containers_with_label(podman_api, "io.cleanroom.singleton=it-redis")) == 1


def test_without_singletons_each_environment_gets_its_own(tmp_path, podman_url, podman_api):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    ids = []
    for _ in range(2):
        with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
            r = env.get_or_create_container("own-redis", lambda: RedisContainer())
            ids.append(r.service.id)
            assert r.client().ping()
        assert containers_with_label(podman_api, f"io.cleanroom.environment={env.id}") == []
    assert ids[0] != ids[1]


def test_wait_gives_up_with_redacted_last_lines(env, podman_api):
    secret = "svc-Password-31337"

    def make():
        return GenericContainer(BUSYBOX, ["/bin/sh", "-c", f"echo starting with {secret}; echo still not ready; sleep 60"],
                                wait=LogMatches("never printed"), secrets={"svc": secret})

    with pytest.raises(ContainerError) as info:
        env.get_or_create_container("never-ready", lambda: _with_timeout(make(), 2))
    text = str(info.value)
    assert "not ready after 2 s" in text and "still not ready" in text
    assert secret not in text and "[REDACTED:secret:svc]" in text
    assert containers_with_label(podman_api, "io.cleanroom.singleton=never-ready") == []  # not left running


def _with_timeout(container, seconds):
    container.startup_timeout = seconds
    return container


def test_service_that_dies_reports_exit_and_output(env, podman_api):
    with pytest.raises(ContainerError) as info:
        env.get_or_create_container("dies", lambda: GenericContainer(
            BUSYBOX, ["/bin/sh", "-c", "echo fatal: no config; exit 7"], wait=LogMatches("ready")))
    assert "exited before it was ready" in str(info.value) and "fatal: no config" in str(info.value)
    assert info.value.exit_code == 7
    assert containers_with_label(podman_api, "io.cleanroom.singleton=dies") == []


def test_a_postgres_error_is_a_container_error_with_values_redacted(pg):
    # PostgreSQL quotes the offending value in its message; here the value is the password.
    with pytest.raises(ContainerError) as info:
        pg.execute_query(f"SELECT '{PG_PASSWORD}'::int")
    assert "PostgreSQL: InvalidTextRepresentation" in str(info.value)
    assert PG_PASSWORD not in str(info.value) and "[REDACTED:secret:postgres_password]" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None  # psycopg's error is not attached
    assert pg.execute_query("SELECT 1") == [["1"]]  # the connection is still usable


def test_a_redis_password_with_url_characters_round_trips_through_its_url(env):
    import redis as redis_py

    password = "p@ss/w:rd#1%x"
    r = env.get_or_create_container("redis-quoted", lambda: RedisContainer(password=password))
    client = redis_py.Redis.from_url(r.url(), socket_timeout=5)
    try:
        assert client.ping() is True and client.connection_pool.connection_kwargs["password"] == password
    finally:
        client.close()


def test_password_printed_by_a_service_never_appears_unmasked(env, pg):
    logs = pg.logs()
    code, out = pg.exec(["/bin/sh", "-c", 'echo "my password is $POSTGRES_PASSWORD"'])
    assert code == 0 and PG_PASSWORD not in out and "[REDACTED:secret:postgres_password]" in out
    assert PG_PASSWORD not in logs
    assert all(PG_PASSWORD not in line for line in env.get_logs())


def test_execute_test_runs_concurrently_with_verdicts(env):
    outcomes = []
    threads = [threading.Thread(target=lambda i=i: outcomes.append(env.execute_test(f"t{i}", lambda: i * 2)))
               for i in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(o.value for o in outcomes) == [i * 2 for i in range(10)]
    assert all(o.verdict == "passed" and o.duration_seconds >= 0 for o in outcomes)
    slow = env.execute_test("slow", lambda: __import__("time").sleep(3), timeout=0.5)
    assert slow.verdict == "timeout" and "exceeded its timeout" in slow.error
    failed = env.execute_test("boom", lambda: 1 / 0)
    assert failed.verdict == "failed" and "ZeroDivisionError" in failed.error


def test_command_and_http_wait_strategies(tmp_path, podman_url):
    from sandbox.services import CommandSucceeds, HttpOk

    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n"
                                    "[cleanroom.security_policy]\nallowed_ports = [8080]\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        marker = env.get_or_create_container("marker", lambda: GenericContainer(
            BUSYBOX, ["/bin/sh", "-c", "sleep 1; touch /tmp/ready; sleep 60"],
            wait=CommandSucceeds(["/bin/test", "-f", "/tmp/ready"])))
        assert marker.exec(["/bin/test", "-f", "/tmp/ready"])[0] == 0
        web = env.get_or_create_container("web", lambda: GenericContainer(
            BUSYBOX, ["/bin/sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && "
                                       "exec httpd -f -p 8080 -h /tmp/www"],
            ports=[8080], wait=HttpOk(8080, "/health")))
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{web.host_port(8080)}/health", timeout=5) as resp:
            assert resp.read() == b"ok\n"


def test_closing_one_environment_leaves_anothers_services_running(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as first:
        svc = first.get_or_create_container("keeper", lambda: GenericContainer(
            BUSYBOX, ["/bin/sh", "-c", "echo up; sleep 60"], wait=LogMatches("up")))
        with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as second:
            second.run(BUSYBOX, ["/bin/true"])
        assert svc.is_running()
    assert not svc.is_running()  # and it goes with its own environment
