"""The engine's end of a session's agent: one attach connection for the session's life.

A reader thread turns the container's output (Podman's frames, carrying the agent's
bytes in pieces) back into the agent's frames and hands each to the command it names;
a command's stdin is fed by its own thread, never more than ``WINDOW`` bytes ahead of
what the agent has acknowledged, so a command that does not read its stdin costs
neither side more than that. Commands run one at a time (the session's lock).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from loguru import logger

from sandbox.engine.output import Output
from sandbox.engine.podman.api import AttachChannel, StdinSource
from sandbox.engine.podman.frames import STDERR
from sandbox.engine.podman.upgrade import chunks
from sandbox.engine.session import agent_frames as af
from sandbox.errors import CleanroomError, ContainerError

WINDOW = 1 << 20  # stdin bytes in flight to the agent, at most


class Running:
    """One command: its output goes to ``output``; ``done`` is set when it is over."""

    def __init__(self, exec_id: int, output: Output) -> None:
        self.id = exec_id
        self.output = output
        self.done = threading.Event()
        self.status: int | None = None  # None: the agent never said (it, or the connection, is gone)
        self._credit = threading.Condition()
        self._in_flight = 0

    def on_reply(self, reply: af.Reply) -> None:
        if reply.kind == af.STDOUT:
            self.output.stdout.feed(reply.payload)
        elif reply.kind == af.STDERR:
            self.output.stderr.feed(reply.payload)
        elif reply.kind == af.ACK:
            with self._credit:
                self._in_flight -= reply.number()
                self._credit.notify_all()
        elif reply.kind == af.EXIT:
            self.finish(reply.number())
        elif reply.kind == af.FAILED:  # the agent could not start it (no pipes, no fork)
            self.output.stderr.feed(b"cleanroom-helper: " + reply.payload[4:] + b"\n")
            self.finish(reply.number())

    def finish(self, status: int | None) -> None:
        self.status = status
        with self._credit:
            self.done.set()
            self._credit.notify_all()

    def wait_credit(self, size: int) -> bool:
        """Room for ``size`` more bytes; False once the command is over."""
        with self._credit:
            while self._in_flight + size > WINDOW and not self.done.is_set():
                self._credit.wait()
            if self.done.is_set():
                return False
            self._in_flight += size
            return True


class Agent:
    """Talks to ``cleanroom-helper -A`` over ``channel`` (opened before the container started)."""

    def __init__(self, channel: AttachChannel, name: str, redact: Callable[[str], str]) -> None:
        self._channel = channel
        self._name = name
        self._redact = redact
        self._decoder = af.Decoder()
        self._ids = itertools.count(1)
        self._current: Running | None = None
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.gone: str | None = None  # why the connection ended, once it has
        self._reader = threading.Thread(target=self._read, name=f"agent-{name}", daemon=True)
        self._reader.start()

    # -- the reader ---------------------------------------------------------------------
    def _read(self) -> None:
        reason = "the sandbox's output ended"
        try:
            for stream, payload in self._channel:
                if stream == STDERR:  # the agent's own complaints, not a command's output
                    logger.warning("session agent: " + self._redact(payload.decode("utf-8", "replace").strip()),
                                   sandbox=self._name)
                    continue
                for reply in self._decoder.feed(payload):
                    self._dispatch(reply)
        except (OSError, ValueError, CleanroomError) as exc:
            reason = f"the connection to the agent failed ({type(exc).__name__})"
        finally:
            self.gone = reason
            self.ready.set()
            with self._lock:
                running, self._current = self._current, None
            if running is not None:
                running.finish(None)

    def _dispatch(self, reply: af.Reply) -> None:
        if reply.kind == af.READY:
            self.ready.set()
            return
        with self._lock:
            running = self._current
            if running is None or reply.exec_id != running.id:
                return  # an earlier command's late acknowledgement
            if reply.kind in (af.EXIT, af.FAILED):
                self._current = None
        running.on_reply(reply)

    # -- commands -----------------------------------------------------------------------
    def start(self, argv: list[str], output: Output, *, env: dict[str, str] | None, workdir: str | None,
              user: str | None, keep_caps: bool, stdin: StdinSource | None) -> Running:
        if self.gone:
            raise ContainerError(f"the session's agent is gone ({self.gone}): the session cannot run commands",
                                 sandbox=self._name)
        running = Running(next(self._ids), output)
        request = af.exec_request(running.id, argv, env=env, workdir=workdir, user=user, keep_caps=keep_caps,
                                  reads_stdin=stdin is not None)
        with self._lock:
            self._current = running
        try:
            self._channel.send(request)
        except BaseException:
            with self._lock:
                self._current = None
            raise
        if stdin is not None:
            threading.Thread(target=self._feed, args=(running, stdin), name=f"agent-stdin-{self._name}",
                             daemon=True).start()
        return running

    def _feed(self, running: Running, stdin: StdinSource) -> None:
        try:
            for chunk in chunks(stdin):
                if not running.wait_credit(len(chunk)):
                    return  # over: the rest is not wanted
                self._channel.send(af.encode(af.STDIN, running.id, chunk))
            if not running.done.is_set():
                self._channel.send(af.encode(af.STDIN_END, running.id))
        except (OSError, CleanroomError) as exc:  # the session ended under it: the command's result says so
            logger.debug("session stdin feed ended early", sandbox=self._name, error=type(exc).__name__)

    def kill(self, running: Running) -> None:
        """Ask the agent to kill the command's process group (the caller waits for ``done``)."""
        try:
            self._channel.send(af.encode(af.KILL, running.id))
        except CleanroomError as exc:
            logger.warning("asking the session agent to kill failed", sandbox=self._name, error=str(exc))

    def close(self) -> None:
        self._channel.close()
        self._reader.join(5)
