"""The official postgres and redis images' conventions, tested with images built locally
the same way (no registry here): a docker-entrypoint.sh that starts as root, initialises
from POSTGRES_* with a temporary server and drops to postgres; a redis image whose USER
is not root. Both are built through cleanroom (`env.images.build`), FROM the local
services image, and run confined under cgroup limits."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import redis as redis_py
from podman_helpers import SERVICES

from sandbox import CleanroomConfig, CleanroomEnvironment, PostgresContainer, RedisContainer

_ENTRYPOINT = r"""#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- postgres "$@"; fi
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  umask 077
  printf '%s' "$POSTGRES_PASSWORD" > /tmp/.pw
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/.pw -A scram-sha-256 --auth-local=trust -E UTF8 >/dev/null
  rm -f /tmp/.pw
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start
  if [ "$POSTGRES_DB" != postgres ]; then createdb -h /var/run/postgresql -U "$POSTGRES_USER" "$POSTGRES_DB"; fi
  pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec "$@"
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory, podman_url):
    tag = uuid.uuid4().hex[:8]
    # Not under localhost/cleanroom/: those names get cleanroom's own start scripts.
    pg_tag, redis_tag = f"localhost/test-official/postgres:{tag}", f"localhost/test-official/redis:{tag}"
    pg_ctx, redis_ctx = tmp_path_factory.mktemp("pg"), tmp_path_factory.mktemp("redis")
    (pg_ctx / "docker-entrypoint.sh").write_text(_ENTRYPOINT)
    (pg_ctx / "docker-entrypoint.sh").chmod(0o755)
    (pg_ctx / "Containerfile").write_text(
        f"FROM {SERVICES}\nENV PGDATA=/var/lib/postgresql/data\nCOPY docker-entrypoint.sh /usr/local/bin/\n"
        "ENTRYPOINT [\"docker-entrypoint.sh\"]\nCMD [\"postgres\"]\n")
    (redis_ctx / "Containerfile").write_text(f"FROM {SERVICES}\nUSER redis\nCMD [\"redis-server\"]\n")
    config = CleanroomConfig.default()
    with CleanroomEnvironment(config, url=podman_url, audit_dir=pg_ctx / "audit", confine=False) as env:
        env.images.build(pg_ctx, tag=pg_tag)
        env.images.build(redis_ctx, tag=redis_tag)
    yield pg_tag, redis_tag
    subprocess.run(["podman", "rmi", "-f", pg_tag, redis_tag], capture_output=True, timeout=60)


@pytest.fixture
def env(tmp_path, podman_url):
    cfg = CleanroomConfig.from_toml("[cleanroom]\nenable_singleton_containers = false\n")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path / "audit") as env:
        yield env


def test_an_entrypoint_style_postgres_image(images, env):
    pg = env.get_or_create_container("official-pg", lambda: PostgresContainer(
        "offdb", "offuser", "off-Secret-9", image=images[0], settings={"max_prepared_transactions": 3}))
    assert pg.execute_query("SELECT current_database(), current_user") == [["offdb", "offuser"]]
    assert pg.execute_query("SHOW max_prepared_transactions") == [["3"]]
    assert env.check_resource_limits()["containers"]["used"] >= 1  # it counts against the budget: confined


def test_a_redis_image_whose_user_is_not_root(images, env):
    password = "off redis:p@ss"
    rd = env.get_or_create_container("user-redis", lambda: RedisContainer(
        password=password, image=images[1], config={"enable-debug-command": "yes"}))
    client = redis_py.Redis.from_url(rd.connection_url, decode_responses=True)
    assert client.ping() and client.execute_command("DEBUG", "SLEEP", "0") in ("OK", True)
    client.close()
    code, out = rd.exec(["/bin/sh", "-c", "ps -o user= -C redis-server"])
    assert code == 0 and out.split() == ["redis"], out
