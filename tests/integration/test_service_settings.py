"""Services configured like the real thing (real Podman, the services image): PostgreSQL
settings, init SQL and extensions, Redis directives, one way to get connection details,
and settings as part of a singleton's identity."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis as redis_py

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, PostgresContainer, RedisContainer

SEED = "CREATE TABLE seeded (id int); INSERT INTO seeded VALUES (1)"


def _env(tmp_path, podman_url, singletons: bool = True) -> CleanroomEnvironment:
    cfg = CleanroomConfig.from_toml(f"[cleanroom]\nenable_singleton_containers = {str(singletons).lower()}\n")
    return CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path / f"audit-{uuid.uuid4().hex[:6]}")


def _pg(**kw) -> PostgresContainer:
    return PostgresContainer("appdb", "app", "pg-Settings-Secret-1", settings={"max_prepared_transactions": 10,
                                                                               "work_mem": "8MB"},
                             init_sql=SEED, extensions=["pgcrypto"], **kw)


def test_postgres_settings_init_sql_and_extensions_once(tmp_path, podman_url):
    name = f"it-pg-settings-{uuid.uuid4().hex[:6]}"
    pg = None
    try:
        with _env(tmp_path, podman_url) as env:
            pg = env.get_or_create_container(name, _pg)
            assert pg.execute_query("SHOW max_prepared_transactions") == [["10"]]
            assert pg.execute_query("SHOW work_mem") == [["8MB"]]
            assert pg.execute_query("SELECT encode(digest('x', 'sha256'), 'hex')")[0][0].startswith("2d711642")
            # What psycopg's own suite needed: two-phase commit.
            with psycopg.connect(pg.connection_url, autocommit=False) as conn:
                conn.execute("INSERT INTO seeded VALUES (2)")
                conn.execute("PREPARE TRANSACTION 'cleanroom-2pc'")
            pg.execute_sql("COMMIT PREPARED 'cleanroom-2pc'")
            params = pg.connection_params()
            assert params["dbname"] == "appdb" and params["port"] == pg.host_port(5432)
            first_id = pg.service.id
        # Another environment reuses the singleton: init_sql does not run again.
        with _env(tmp_path, podman_url) as env:
            again = env.get_or_create_container(name, _pg)
            assert again.service.id == first_id and again.reused
            assert again.execute_query("SELECT count(*) FROM seeded") == [["2"]]
        # A changed setting is another definition: a new container (a later environment
        # asks; within one, a name keeps the container it got).
        with _env(tmp_path, podman_url) as env:
            changed = env.get_or_create_container(name, lambda: PostgresContainer(
                "appdb", "app", "pg-Settings-Secret-1", settings={"max_prepared_transactions": 5}))
            assert changed.service.id != first_id
            assert changed.execute_query("SHOW max_prepared_transactions") == [["5"]]
            pg = changed
    finally:
        if pg is not None:
            pg.stop()


def test_an_unknown_postgres_setting_is_refused_by_the_server(tmp_path, podman_url):
    with _env(tmp_path, podman_url, singletons=False) as env:
        with pytest.raises(ContainerError) as info:
            env.get_or_create_container("bad-pg", lambda: PostgresContainer(settings={"no_such_setting": 1}))
    assert "no_such_setting" in info.value.last_output


def test_redis_config_and_a_quoted_password_in_the_url(tmp_path, podman_url):
    password = "r3d!s p@ss:w/rd"
    with _env(tmp_path, podman_url, singletons=False) as env:
        debug = env.get_or_create_container("redis-debug", lambda: RedisContainer(
            password=password, config={"enable-debug-command": "yes", "maxmemory": "10mb"}))
        plain = env.get_or_create_container("redis-plain", lambda: RedisContainer(password=password))
        client = redis_py.Redis.from_url(debug.connection_url, decode_responses=True)
        assert client.execute_command("DEBUG", "SLEEP", "0") in ("OK", True)
        assert client.config_get("maxmemory") == {"maxmemory": "10485760"}
        assert debug.connection_params()["password"] == password
        with pytest.raises(redis_py.ResponseError):
            redis_py.Redis.from_url(plain.connection_url).execute_command("DEBUG", "SLEEP", "0")
        client.close()


def test_a_changed_redis_directive_gives_a_new_singleton(tmp_path, podman_url):
    name = f"it-redis-config-{uuid.uuid4().hex[:6]}"
    made = []
    try:
        for config in ({"maxmemory": "10mb"}, {"maxmemory": "10mb"}, {"maxmemory": "20mb"}):
            with _env(tmp_path, podman_url) as env:
                made.append(env.get_or_create_container(name, lambda c=config: RedisContainer(config=c)))
        ids = [r.service.id for r in made]
        assert ids[0] == ids[1] != ids[2]
    finally:
        made[-1].stop()
