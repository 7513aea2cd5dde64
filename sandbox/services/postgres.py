"""PostgreSQL as a confined service, with per-test databases cloned from a template."""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from sandbox.errors import ContainerError
from sandbox.services import pg_queue
from sandbox.services.generic import SERVICES_IMAGE, GenericContainer
from sandbox.services.settings import Value, postgres_args, postgres_extensions
from sandbox.services.wait import AllOf, LogMatches, PortOpen

# Our image runs as container root (so cgroup placement works on v1) and drops to the
# postgres user for everything PostgreSQL does. Data lives on a tmpfs: tests need speed,
# not durability, hence fsync off too.
_ENTRYPOINT = r"""set -e
D=/var/lib/postgresql/data
chown postgres:postgres /var/lib/postgresql
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
umask 077
printf '%s' "$POSTGRES_PASSWORD" > /tmp/.pw
chown postgres /tmp/.pw
as_pg initdb -D "$D" -U "$POSTGRES_USER" --pwfile=/tmp/.pw -A scram-sha-256 --auth-local=trust -E UTF8 \
    --no-sync >/dev/null
rm -f /tmp/.pw
echo "host all all 0.0.0.0/0 scram-sha-256" >> "$D/pg_hba.conf"
as_pg postgres -D "$D" -c listen_addresses='*' -c unix_socket_directories=/tmp -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "$@" &
pid=$!
# A server that refused to start (an unknown setting, say) ends the wait at once.
until as_pg pg_isready -q -h /tmp; do kill -0 "$pid" 2>/dev/null || exit 1; sleep 0.05; done
as_pg createdb -h /tmp -U "$POSTGRES_USER" "$POSTGRES_DB" 2>/dev/null || true
echo "cleanroom: postgres ready"
wait $pid
"""


def _rows(cursor: Any) -> list[list[str | None]]:
    if cursor.description is None:
        return []
    return [[None if v is None else str(v) for v in row] for row in cursor.fetchall()]


class PostgresContainer(GenericContainer):
    """PostgreSQL. ``settings`` are postgresql.conf parameters given to the server
    (``{"max_prepared_transactions": 10}``); ``init_sql`` runs once when the container
    is created (not when a singleton is reused), after ``extensions`` are created in
    ``db``. All three are part of a singleton's identity: a change gives a new container.
    The default password is 8+ characters: shorter secrets are refused by the redactor."""

    def __init__(self, db: str = "test", user: str = "test", password: str = "test-password",
                 image: str = SERVICES_IMAGE, *, port: int = 5432, data_bytes: int = 512 * 1024 * 1024,
                 settings: dict[str, Value] | None = None,
                 init_sql: str | list[str] | None = None, extensions: list[str] | None = None) -> None:
        self.db, self.user, self.password = db, user, password
        self.settings = dict(settings or {})
        self.extensions = postgres_extensions(extensions)
        self.init_sql = [init_sql] if isinstance(init_sql, str) else list(init_sql or [])
        args = postgres_args(self.settings)
        env = {"POSTGRES_DB": db, "POSTGRES_USER": user, "POSTGRES_PASSWORD": password}
        ours = image.startswith("localhost/cleanroom/")
        if ours:
            command = ["/bin/sh", "-c", _ENTRYPOINT, "cleanroom-postgres", *args]
            wait = AllOf(LogMatches(r"cleanroom: postgres ready"), PortOpen(port))
            writable = {"/var/lib/postgresql": data_bytes}
        else:
            # The official image's conventions: its entrypoint reads POSTGRES_*; it logs
            # "ready" twice (once for the init server, once for the real one).
            # Arguments starting with "-" go to postgres through the entrypoint.
            command = args or None
            wait = AllOf(LogMatches(r"database system is ready to accept connections", times=2), PortOpen(port))
            writable = {"/var/lib/postgresql/data": data_bytes, "/var/run/postgresql": 1024 * 1024}
        super().__init__(image, command, env=env, ports=[port], wait=wait, writable_paths=writable,
                         secrets={"postgres_password": password})
        self.port = port
        self._lock = threading.Lock()
        self._admin: psycopg.Connection | None = None
        self._queues: dict[str, pg_queue.DatabaseQueue] = {}
        self._initialised = False

    def identity(self) -> dict[str, Any]:
        return {"init_sql": self.init_sql, "extensions": self.extensions}

    def wait_for_ready(self, timeout: float | None = None) -> PostgresContainer:
        super().wait_for_ready(timeout)
        if not self.reused and not self._initialised:
            self._initialise()
        return self

    def _initialise(self) -> None:
        """Extensions, then init_sql: once, on the container that was just created."""
        try:
            for name in self.extensions:
                self.execute_sql(pgsql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(pgsql.Identifier(name)))
            for statement in self.init_sql:
                self.execute_sql(statement)
        except psycopg.Error as exc:
            # psycopg's text may quote the statement; the caller's redactor masks it again.
            raise ContainerError(f"PostgreSQL initialisation failed: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:300]}", sandbox=self._require().name) from None
        self._initialised = True

    # -- connection details -----------------------------------------------------------
    def connection_params(self, dbname: str | None = None) -> dict[str, Any]:
        return {"host": self.host, "port": self.host_port(self.port), "user": self.user,
                "password": self.password, "dbname": dbname or self.db}

    def url(self, dbname: str | None = None) -> str:
        p = self.connection_params(dbname)
        pw = urllib.parse.quote(p["password"], safe="")
        return f"postgresql://{urllib.parse.quote(p['user'], safe='')}:{pw}@{p['host']}:{p['port']}/{p['dbname']}"

    @property
    def connection_url(self) -> str:
        return self.url()

    def connect(self, dbname: str | None = None, **kw: Any) -> psycopg.Connection:
        return psycopg.connect(**self.connection_params(dbname), connect_timeout=5, **kw)

    # -- the guide's methods ----------------------------------------------------------
    def health_check(self) -> bool:
        return super().health_check() and self.is_connected()

    def adoption_probe(self) -> bool:
        """One query on the admin connection, which then stays open for what follows."""
        try:
            with self._lock:
                return self._admin_conn().execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            self._admin = None
            return False

    def is_connected(self) -> bool:
        try:
            with self.connect(autocommit=True) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            return False

    def _admin_conn(self) -> psycopg.Connection:
        if self._admin is None or self._admin.closed:
            self._admin = self.connect(autocommit=True)
        return self._admin

    def execute_sql(self, sql: str, params: Any = None) -> None:
        with self._lock:
            self._run(lambda c: c.execute(sql, params))

    def execute_query(self, sql: str, params: Any = None) -> list[list[str | None]]:
        """Rows as lists of strings: ``SELECT 1`` → ``[["1"]]``."""
        with self._lock:
            return self._run(lambda c: _rows(c.execute(sql, params)))

    def _run(self, fn):
        """``fn`` on the admin connection; psycopg's errors leave as ContainerError, redacted
        (its messages quote values, and a value may be a secret)."""
        try:
            try:
                return fn(self._admin_conn())
            except psycopg.OperationalError:
                self._admin = None  # the server went away; one fresh connection, then give up
                return fn(self._admin_conn())
        except psycopg.Error as exc:
            message = self._require_launcher().redact(f"{type(exc).__name__}: {exc}".strip())
        raise ContainerError(f"PostgreSQL: {message}", sandbox=self.service.name)

    def create_connection_pool(self, size: int = 10, dbname: str | None = None) -> PostgresPool:
        return PostgresPool(self, size, dbname)

    # -- per-test databases -----------------------------------------------------------
    def create_database(self, name: str, template: str | None = None) -> None:
        try:
            with self._lock:
                self._run(lambda c: pg_queue.clone(c, name, template))
        except ContainerError as exc:
            raise ContainerError(str(exc), sandbox=self.service.name) from None

    def drop_database(self, name: str) -> None:
        with self._lock:
            self._run(lambda c: pg_queue.drop(c, name))

    def database_queue(self, template: str, depth: int = pg_queue.DEFAULT_DEPTH) -> pg_queue.DatabaseQueue:
        """The queue of per-test databases cloned ahead from ``template`` (one per template,
        started on first call, closed with the environment)."""
        with self._lock:
            q = self._queues.get(template)
            if q is None:
                q = self._queues[template] = pg_queue.DatabaseQueue(self, template, depth)
            return q

    def release(self) -> None:
        """This process is done with the container (it may stay running for others): its
        queues drop what they prepared, and the admin connection closes."""
        with self._lock:
            queues, self._queues = list(self._queues.values()), {}
        for q in queues:
            q.close()
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    def database_exists(self, name: str) -> bool:
        return bool(self.execute_query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))

    def stop(self) -> None:
        self.release()
        super().stop()


class PostgresPool:
    """A thread-safe pool; ``execute_query`` may be called from many threads at once."""

    def __init__(self, container: PostgresContainer, size: int, dbname: str | None) -> None:
        self.container = container
        params = container.connection_params(dbname)
        conninfo = make_conninfo(**params)
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=size, kwargs={"autocommit": True}, open=True)

    def execute_query(self, sql: str, params: Any = None) -> list[list[str | None]]:
        with self._pool.connection() as conn:
            return _rows(conn.execute(sql, params))

    def execute_sql(self, sql: str, params: Any = None) -> None:
        with self._pool.connection() as conn:
            conn.execute(sql, params)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TestDatabase:
    """One test's own database, cloned from the session template and dropped after.

    With ``queue`` (``container.database_queue(template)``) the clone was made ahead and
    the drop happens in the background: the test waits for neither."""

    __test__ = False  # not a pytest test class

    def __init__(self, container: PostgresContainer, template: str,
                 queue: pg_queue.DatabaseQueue | None = None) -> None:
        self.container = container
        self._queue = queue
        if queue is not None:
            self.name = queue.take()
        else:
            self.name = f"t_{uuid.uuid4().hex[:16]}"
            container.create_database(self.name, template)
        self.url = container.url(self.name)
        self._conn: psycopg.Connection | None = None

    def connect(self, **kw: Any) -> psycopg.Connection:
        return self.container.connect(self.name, **kw)

    def _c(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect(autocommit=True)
        return self._conn

    def execute_sql(self, sql: str, params: Any = None) -> None:
        self._c().execute(sql, params)

    def execute_query(self, sql: str, params: Any = None) -> list[list[str | None]]:
        return _rows(self._c().execute(sql, params))

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._queue is not None:
            self._queue.discard(self.name)
        else:
            self.container.drop_database(self.name)
