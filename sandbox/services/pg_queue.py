"""Per-test databases prepared ahead: a few clones of the template kept ready by a
background thread, handed over in microseconds, and dropped later by another thread,
off the test's path.

Names carry the owning process (``cleanroom_q_<pid>_<hex>``): a process killed before
its queue closed leaves clones behind, and the next queue on this host drops those
whose process is gone and to which nobody is connected.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import threading
import time
import uuid
from typing import Any

import psycopg
from loguru import logger
from psycopg import sql as pgsql

from sandbox.errors import ContainerError

PREFIX = "cleanroom_q_"
DEFAULT_DEPTH = 4
_NAME = re.compile(rf"^{PREFIX}(\d+)_[0-9a-f]+$")
_CLOSE_WAIT = 30.0  # a clone in flight at close is waited for, then dropped
_FAILURES_TOLD = 3  # consecutive clone failures before a waiting test gets the error


def clone(conn: psycopg.Connection, name: str, template: str | None) -> None:
    """CREATE DATABASE name [from template]. Two clones of one template at the same
    instant collide ("being accessed by other users": pytest-xdist workers do that), so
    a collision is retried briefly."""
    ident = pgsql.Identifier(name)
    query = pgsql.SQL("CREATE DATABASE {}").format(ident)
    if template:
        query = pgsql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            ident, pgsql.Identifier(template))
    for attempt in range(50):
        try:
            conn.execute(query)
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.01 * (attempt + 1))
    raise ContainerError(f"could not clone template {template!r}: it stays in use")


def drop(conn: psycopg.Connection, name: str, *, force: bool = True) -> None:
    query = pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name))
    conn.execute(query + pgsql.SQL(" WITH (FORCE)") if force else query)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class DatabaseQueue:
    """``depth`` databases cloned from ``template``, ready before a test asks.

    ``take()`` returns a ready one (waiting only when tests outrun the cloner);
    ``discard(name)`` queues its drop. ``close()`` stops both threads and drops every
    database still queued or waiting to be dropped: nothing is left behind.
    """

    def __init__(self, container: Any, template: str, depth: int = DEFAULT_DEPTH) -> None:
        self._container = container
        self.template = template
        self.depth = max(1, depth)
        self._cond = threading.Condition()
        self._ready: collections.deque[str] = collections.deque()
        self._error: str | None = None
        self._closed = False
        self._drops: queue.Queue[str | None] = queue.Queue()
        self.clones_made = 0
        self.dropped = 0
        tag = f"{template[:24]}"
        self._cloner = threading.Thread(target=self._clone_loop, name=f"cleanroom-pg-clone-{tag}", daemon=True)
        self._dropper = threading.Thread(target=self._drop_loop, name=f"cleanroom-pg-drop-{tag}", daemon=True)
        self._cloner.start()
        self._dropper.start()

    # -- the test's side --------------------------------------------------------------
    def take(self, timeout: float = 60.0) -> str:
        """A ready database's name; it is the caller's until ``discard``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready:
                if self._closed:
                    raise ContainerError("the per-test database queue is closed (its environment closed)")
                if self._error is not None:
                    raise ContainerError(f"could not prepare a database from template {self.template!r}: "
                                         f"{self._error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ContainerError(f"no database cloned from {self.template!r} within {timeout:g} s")
                self._cond.wait(left)
            name = self._ready.popleft()
            self._cond.notify_all()  # the cloner refills
        return name

    def discard(self, name: str) -> None:
        """Drop ``name`` in the background (its open connections are ended)."""
        self._drops.put(name)

    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_ready(self, count: int | None = None, timeout: float = 30.0) -> bool:
        """Until ``count`` (default: depth) databases are ready; for benchmarks and tests."""
        want = self.depth if count is None else count
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._ready) < want and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return len(self._ready) >= want

    def wait_dropped(self, timeout: float = 30.0) -> bool:
        """Until every discarded database is dropped; for tests."""
        deadline = time.monotonic() + timeout
        while self._drops.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._drops.unfinished_tasks

    # -- background -------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        return self._container.connect(autocommit=True)

    def _redact(self, text: str) -> str:
        # psycopg's messages may quote values; the environment's redactor masks secrets.
        return self._container._require_launcher().redact(text)

    def _clone_loop(self) -> None:
        conn: psycopg.Connection | None = None
        failures = 0
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self.depth:
                    self._cond.wait()
                if self._closed:
                    break
            name = f"{PREFIX}{os.getpid()}_{uuid.uuid4().hex[:12]}"
            try:
                conn = conn if conn is not None and not conn.closed else self._connect()
                clone(conn, name, self.template)
            except Exception as exc:  # told to the next taker; retried with a growing pause
                failures += 1
                message = self._redact(f"{type(exc).__name__}: {str(exc).strip()[:300]}")
                logger.warning("per-test database clone failed", template=self.template, error=message)
                with self._cond:
                    # A takers hears of it after a few attempts: one failure may be passing.
                    self._error = message if failures >= _FAILURES_TOLD else None
                    self._cond.notify_all()
                    self._cond.wait(min(0.05 * 2 ** failures, 2.0))
                if conn is not None:
                    conn.close()
                conn = None
                continue
            failures = 0
            with self._cond:
                self.clones_made += 1
                self._error = None
                if self._closed:
                    self._drops.put(name)
                    break
                self._ready.append(name)
                self._cond.notify_all()
        if conn is not None:
            conn.close()

    def _drop_loop(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            conn = self._connect()
            self._sweep(conn)
        except Exception as exc:  # the sweep is housekeeping; the queue works without it
            logger.debug("sweep of stale per-test databases failed", error=str(exc))
        while True:
            name = self._drops.get()
            try:
                if name is None:
                    return
                conn = conn if conn is not None and not conn.closed else self._connect()
                drop(conn, name)
                self.dropped += 1
            except Exception as exc:  # left for the next queue's sweep
                logger.warning("per-test database not dropped (the next run's sweep removes it)", database=name,
                               error=self._redact(str(exc).strip()[:300]))
                if conn is not None:
                    conn.close()
                conn = None
            finally:
                self._drops.task_done()
                if name is None and conn is not None:
                    conn.close()

    def _sweep(self, conn: psycopg.Connection) -> None:
        """Drop queue databases of processes that are gone, and only when nobody uses them."""
        rows = conn.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)", (PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
        for (name,) in rows:
            m = _NAME.match(name)
            if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
                try:
                    drop(conn, name, force=False)
                except psycopg.Error as exc:  # someone connected meanwhile: not stale after all
                    logger.debug("stale per-test database kept", database=name, error=str(exc).strip()[:200])

    # -- close ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop cloning, drop every database still queued and every pending drop."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            ready, self._ready = list(self._ready), collections.deque()
            self._cond.notify_all()
        self._cloner.join(_CLOSE_WAIT)  # a clone in flight lands in the drop queue
        for name in ready:
            self._drops.put(name)
        self._drops.put(None)
        self._dropper.join(_CLOSE_WAIT)
        if self._dropper.is_alive():
            logger.warning("per-test databases still being dropped at close", template=self.template)
