"""A session: one long-lived confined sandbox that runs many commands.

It is made like any sandbox (the runner's create: init → posture check → confine,
the same limits, network rules, redaction and audit); its first process is
cleanroom-helper's agent (``-A``, static, mounted read-only, so the image needs
nothing), placed in the sandbox's cgroup before it starts, so every command it forks
is confined from its first instruction: no exec API call, no pid to find, no cgroup
move per command. The engine talks to it over the container's own attach connection,
opened before start and kept for the session's life (``session/agent.py``). Execs run
one at a time, so the usage between two cgroup readings is that exec's, and a limit
hit is that exec's breach. A timeout kills the command's process group through the
agent (the whole sandbox when the agent does not answer). The whole session is
bounded by ``test_execution_timeout`` (or ``timeout=``): then the sandbox is killed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
from loguru import logger

from sandbox.engine.helper.build import HELPER_TARGET, helper
from sandbox.engine.helper.users import SWITCH_CAPS, is_root, keep_switch_caps
from sandbox.engine.mounts import check_mounts, engine_sockets
from sandbox.engine.output import Output, errors_redacted
from sandbox.engine.podman.api import StdinSource
from sandbox.engine.results import RunResult, audit_records
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.session.agent import Agent
from sandbox.engine.session.files import Received, one_file, split, tar_of_bytes, tar_of_dir, unpack
from sandbox.engine.session.usage import CgroupCounters, exec_usage
from sandbox.engine.teardown.removal import Made
from sandbox.engine.types import CreateRequest, Mount
from sandbox.errors import CleanroomError, ContainerError, TimeoutExceeded

_KILL_WAIT = 5.0  # how long the agent may take to report a killed command over


class Session:
    """Use as ``with env.session(image, ...) as sb:``; closed on exit, error or SIGTERM."""

    def __init__(self, runner: SandboxRunner, request: CreateRequest, *, timeout: float | None = None,
                 user: str | None = None) -> None:
        self._runner = runner
        self._api = runner.api
        self.image = request.image
        self.name = request.name
        self.workdir = request.workdir
        # Execs run as the image's USER unless told otherwise; the pause process as root.
        self.user = user or _image_user(runner, request.image)
        self._lock = threading.Lock()
        self._closed = False
        self._expired = False
        self._total = float(timeout if timeout is not None else runner.config.test_execution_timeout)
        request = _with_agent(request)
        with errors_redacted(runner.redactor):
            self._made: Made = runner.create(request)
            try:
                self._agent = Agent(self._api.attach_channel(self._made.handle.id), self.name, runner.redact)
            except BaseException:
                runner.dispose(self._made)
                raise
            try:
                self._api.start_container(self._made.handle.id, timeout=runner.startup_timeout)
                if not self._agent.ready.wait(runner.startup_timeout) or self._agent.gone:
                    raise ContainerError(f"the session's agent did not start ({self._agent.gone or 'no answer'})",
                                         sandbox=self.name)
            except BaseException:
                runner.dispose(self._made)
                self._agent.close()
                raise
        self._counters = CgroupCounters.of(runner.confiners, self._made.handle)
        self._deadline = time.monotonic() + self._total
        self._timer = threading.Timer(self._total, self._expire)
        self._timer.daemon = True
        self._timer.start()
        runner.audit("session.opened", "Medium", sandbox=self.name, image=self.image, limit_seconds=self._total)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the sandbox (safe to call twice)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._timer.cancel()
            try:
                # No final usage read: each exec already reported (and audited) its own.
                self._runner.dispose(self._made)
            finally:
                self._agent.close()
                self._runner.audit("session.closed", "Medium", sandbox=self.name, expired=self._expired)

    def _expire(self, detail: str = "the session's total time") -> None:
        self._expired = True
        self._runner.audit("limit.breach", "High", sandbox=self.name, limit="timeout", limit_value=self._total,
                           detail=detail)
        try:
            self._api.kill_container(self._made.handle.id)
        except CleanroomError as exc:
            logger.warning("session kill failed", sandbox=self.name, error=str(exc))

    def _check_open(self) -> None:
        if self._closed:
            raise ContainerError("the session is closed", sandbox=self.name)
        if self._expired or time.monotonic() >= self._deadline:
            raise TimeoutExceeded("session", self._total, sandbox=self.name)

    # -- commands ----------------------------------------------------------------------
    def exec(self, command: list[str], *, timeout: float | None = None, stdin: StdinSource | None = None,
             env: dict[str, str] | None = None, workdir: str | None = None, user: str | None = None,
             on_stdout: Callable[[str], None] | None = None,
             on_stderr: Callable[[str], None] | None = None) -> RunResult:
        """Run ``command`` in the sandbox; its redacted result. A timeout kills the command
        (not the session) and raises ``TimeoutExceeded`` carrying the result."""
        with self._lock, errors_redacted(self._runner.redactor):
            self._check_open()
            remaining = self._deadline - time.monotonic()
            limit = min(float(timeout), remaining) if timeout is not None else remaining
            return self._exec(command, limit, stdin, env, workdir or self.workdir, user or self.user,
                              on_stdout, on_stderr)

    def _exec(self, command: list[str], limit: float, stdin: StdinSource | None, env: dict[str, str] | None,
              workdir: str | None, user: str | None, on_stdout: Callable[[str], None] | None,
              on_stderr: Callable[[str], None] | None) -> RunResult:
        shown = [self._runner.redact(a) for a in command]
        self._runner.audit("session.exec", "High", sandbox=self.name, command=shown)
        started = time.monotonic()
        before = self._counters.read() if self._counters else {}
        output = Output(self._runner.redactor, on_stdout, on_stderr)
        running = self._agent.start(command, output, env=env, workdir=workdir, user=user,
                                    keep_caps=self._keep_caps, stdin=stdin)
        timed_out = not running.done.wait(max(0.0, started + limit - time.monotonic()))
        if timed_out:
            self._agent.kill(running)
            if not running.done.wait(_KILL_WAIT):
                logger.warning("the session agent did not answer a kill: killing the session's sandbox",
                               sandbox=self.name)
                self._expire("an exec's timeout, which the session's agent did not answer: the session ended")
                running.done.wait(_KILL_WAIT)
        elif running.status is None and not self._expired:
            output.close()
            raise ContainerError(f"the session's agent is gone ({self._agent.gone}): the command's result is "
                                 "unknown and the session cannot run more", sandbox=self.name,
                                 last_output=output.tail())
        timed_out = timed_out or running.status is None  # the session's own time ran out under it
        code = running.status if running.status is not None else 137
        output.close()
        usage, breaches = exec_usage(before, self._counters.read() if self._counters else {}, self._made.handle.usage)
        result = RunResult(sandbox=self.name, image=self.image, command=shown, exit_code=code,
                           stdout=output.stdout.text(), stderr=output.stderr.text(),
                           duration_seconds=time.monotonic() - started, usage=usage, redactions=output.counts(),
                           timed_out=timed_out, oom_killed=usage.oom_kills > 0, breaches=breaches,
                           truncated=output.truncated)
        for b in breaches:
            self._runner.audit("limit.breach", "High", sandbox=self.name, limit=b.limit, limit_value=b.limit_value,
                               observed=b.observed, detail=b.detail)
        for event, level, data in audit_records(result)[1:]:  # the sandbox itself is not removed
            self._runner.audit(event, level, **data)
        if timed_out:
            exc = TimeoutExceeded("session exec", limit, sandbox=self.name, last_output=output.tail())
            exc.result = result  # type: ignore[attr-defined]
            raise exc
        return result

    @property
    def _keep_caps(self) -> bool:
        return keep_switch_caps(self._runner.config)

    # -- files -------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Put ``data`` at ``path`` (its directory must exist and be writable, e.g. /tmp)."""
        directory, name = split(path)
        with self._lock, errors_redacted(self._runner.redactor):
            self._check_open()
            self._api.put_archive(self._made.handle.id, directory, tar_of_bytes(name, data, mode))
        self._audit_in("session.write", path, len(data))

    def copy_in(self, local_dir: str | os.PathLike[str], path: str) -> None:
        """Copy a host directory (judged by allowed_mount_paths, like a mount) to ``path``."""
        directory, name = split(path)
        source = check_mounts(self._runner.config, [Mount(str(local_dir), path)],
                              sockets=engine_sockets(self._api.url))[0].source
        data, size = tar_of_dir(source, name)
        with self._lock, errors_redacted(self._runner.redactor):
            self._check_open()
            self._api.put_archive(self._made.handle.id, directory, data)
        self._audit_in("session.copy_in", path, size, source=source)

    def read_file(self, path: str) -> bytes:
        """The file at ``path``, unredacted (data you asked for), at most max_copy_out_bytes."""
        data = self._fetch(path)
        content = one_file(data, path)
        digest = hashlib.sha256(content).hexdigest()
        self._audit_out("session.read", path, Received(files=1, bytes=len(content), sha256=digest))
        return content

    def copy_out(self, path: str, local_dir: str | os.PathLike[str]) -> None:
        """Copy ``path`` from the sandbox into ``local_dir`` (unredacted, size-bounded)."""
        self._audit_out("session.copy_out", path, unpack(self._fetch(path), local_dir), local_dir=str(local_dir))

    def _fetch(self, path: str) -> bytes:
        split(path)
        with self._lock, errors_redacted(self._runner.redactor):
            self._check_open()
            limit = int(self._runner.config.security_policy.max_copy_out_bytes)
            return self._api.get_archive(self._made.handle.id, path, max_bytes=limit)

    def _audit_in(self, event: str, path: str, size: int, **extra: Any) -> None:
        self._runner.audit(event, "High", sandbox=self.name, path=path, bytes=size, **extra)

    def _audit_out(self, event: str, path: str, got: Received, **extra: Any) -> None:
        # Not redacted (the caller asked for these bytes), so the audit proves what left.
        self._runner.audit(event, "High", sandbox=self.name, path=path, files=got.files, bytes=got.bytes,
                           sha256=got.sha256, **extra)


def _image_user(runner: SandboxRunner, image: str) -> str | None:
    with errors_redacted(runner.redactor):
        user = (runner.images or runner.api).image_config(image).user  # ensure() just looked it up
    return None if is_root(user) else user


def _with_agent(request: CreateRequest) -> CreateRequest:
    """The request with cleanroom-helper's agent as its first process (as root, so it
    can be placed, and with the switching capabilities it drops in each command), stdin
    open (the agent's requests arrive there) and no container log: the channel carries
    every command's output unredacted, which must not be written to disk."""
    return msgspec.structs.replace(request, command=["-A"], entrypoint=[HELPER_TARGET], stdin=True, keep_log=False,
                                   system_mounts=[*request.system_mounts, Mount(helper(), HELPER_TARGET)],
                                   extra_caps=list(SWITCH_CAPS), user="0")
