"""Service settings without Podman: names checked, values one line, how they reach the
server's command, and that they are part of a singleton's identity."""

from __future__ import annotations

import pytest

from sandbox import PostgresContainer, RedisContainer
from sandbox.errors import CleanroomError
from sandbox.services.settings import postgres_args, redis_conf_quote, redis_directives


def test_postgres_settings_become_dash_c_pairs():
    assert postgres_args({"max_prepared_transactions": 10, "fsync": False, "app.mode": "x y"}) == [
        "-c", "max_prepared_transactions=10", "-c", "fsync=off", "-c", "app.mode=x y"]


@pytest.mark.parametrize("settings", [{"bad name": 1}, {"1x": 1}, {"a;b": 1}, {"ok": "two\nlines"}, {"a.b.c": 1}])
def test_bad_postgres_settings_are_refused_before_anything_starts(settings):
    with pytest.raises(CleanroomError):
        PostgresContainer(settings=settings)


def test_bad_extension_names_are_refused():
    with pytest.raises(CleanroomError):
        PostgresContainer(extensions=["pg crypto; DROP"])


def test_redis_directives_are_checked_and_quoted_for_the_conf():
    assert redis_directives({"enable-debug-command": True, "maxmemory": "10mb"}) == [
        ("enable-debug-command", "yes"), ("maxmemory", "10mb")]
    assert redis_conf_quote('a"b\\c') == '"a\\"b\\\\c"'
    for bad in ({"port": 1}, {"requirepass": "x"}, {"include": "/etc/x"}, {"Bad": 1}, {"save": "a\nb"}):
        with pytest.raises(CleanroomError):
            RedisContainer(config=bad)


def test_settings_and_initialisation_are_part_of_the_singleton_digest():
    base = PostgresContainer(settings={"work_mem": "8MB"}, init_sql="SELECT 1", extensions=["pgcrypto"])
    same = PostgresContainer(settings={"work_mem": "8MB"}, init_sql="SELECT 1", extensions=["pgcrypto"])
    assert base.spec_digest() == same.spec_digest()
    for other in (PostgresContainer(settings={"work_mem": "16MB"}, init_sql="SELECT 1", extensions=["pgcrypto"]),
                  PostgresContainer(settings={"work_mem": "8MB"}, init_sql="SELECT 2", extensions=["pgcrypto"]),
                  PostgresContainer(settings={"work_mem": "8MB"}, init_sql="SELECT 1")):
        assert other.spec_digest() != base.spec_digest()
    assert RedisContainer(config={"maxmemory": "1mb"}).spec_digest() != RedisContainer().spec_digest()


def test_the_official_images_get_the_settings_as_server_arguments():
    pg = PostgresContainer(image="docker.io/library/postgres:16", settings={"max_connections": 50})
    assert pg.command == ["-c", "max_connections=50"]
    r = RedisContainer(image="docker.io/library/redis:7", config={"maxmemory": "10mb"})
    assert r.command[-2:] == ["--maxmemory", "10mb"]
