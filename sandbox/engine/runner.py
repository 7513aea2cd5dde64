"""The life of one sandbox, in the order DESIGN.md fixes, one small stage each.

create → init → confine → attach → start → collect → verdict → remove → audit.
Nothing runs before confinement; nothing is seen before redaction. Any failure
removes everything made so far before the error (a ``CleanroomError``) leaves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from loguru import logger

from sandbox.engine import cleanup
from sandbox.engine.api import AttachStream, PodmanAPI, StdinSource
from sandbox.engine.exits import exit_status
from sandbox.engine.mounts import check_mounts, engine_sockets
from sandbox.engine.output import Output, pump, redact_again, redact_text
from sandbox.engine.posture import KernelReader, differences, read_kernel_view, read_seccomp_profile
from sandbox.engine.results import RunResult, audit_records
from sandbox.engine.spec import build_spec
from sandbox.engine.types import AuditFn, Confiner, CreateRequest, NetworkAttachment, SandboxHandle
from sandbox.engine.users import as_user, keep_switch_caps, moves_processes
from sandbox.errors import CleanroomError, ContainerError, NetworkPolicyViolation, PolicyError, TimeoutExceeded

# How long the output reader may take to drain after a timeout kill.
_DRAIN_SECONDS = 10.0


class Made:
    """A container this runner created: its handle and its cleanup registration."""

    def __init__(self, handle: SandboxHandle, token: int) -> None:
        self.handle = handle
        self.token = token


class SandboxRunner:
    """Runs the sandboxes of one environment through one ``PodmanAPI``; services are
    made by the same ``create`` and ``dispose`` (see ``ServiceLauncher``)."""

    def __init__(self, api: PodmanAPI, config: Any, *, environment_id: str, redactor: Any = None,
                 audit: AuditFn | None = None, confiners: Sequence[Confiner] = (),
                 labels: Callable[[str, str], dict[str, str]] | None = None,
                 kernel_view: KernelReader | None = read_kernel_view) -> None:
        self.api = api
        self.config = config
        self.environment_id = environment_id
        self.redactor = redactor
        self.audit: AuditFn = audit or (lambda *a, **k: None)
        self.confiners = tuple(confiners)
        self._labels = labels
        self._kernel_view = kernel_view  # None only where there is no kernel to ask (unit tests)

    @property
    def startup_timeout(self) -> float:
        return float(self.config.container_startup_timeout)

    def redact(self, text: str) -> str:
        return redact_text(self.redactor, text)

    def request(self, image: str, command: list[str] | None = None, *, kind: str = "sandbox",
                name: str | None = None, labels: dict[str, str] | None = None, **options: Any) -> CreateRequest:
        """A named request carrying this environment's ownership labels."""
        name = name or f"cleanroom-{kind}-{uuid.uuid4().hex[:12]}"
        all_labels = dict(self._labels(kind, name) if self._labels else {})
        all_labels.update(labels or {})
        return CreateRequest(image=image, command=command, kind=kind, name=name, labels=all_labels, **options)

    # -- a sandbox, run to completion -----------------------------------------------------
    def run(self, request: CreateRequest, *, timeout: float | None = None,
            on_stdout: Callable[[str], None] | None = None,
            on_stderr: Callable[[str], None] | None = None, stdin: StdinSource | None = None) -> RunResult:
        """``stdin`` (bytes or a binary file) is fed to the command, then end of file
        (the request must have ``stdin=True``)."""
        with self.errors_redacted():
            return self._run(request, timeout, on_stdout, on_stderr, stdin)

    def _run(self, request: CreateRequest, timeout: float | None, on_stdout: Callable[[str], None] | None,
             on_stderr: Callable[[str], None] | None, stdin: StdinSource | None = None) -> RunResult:
        limit = float(timeout if timeout is not None else self.config.test_execution_timeout)
        started = time.monotonic()
        made = self.create(request)
        self.audit("sandbox.command", "High", sandbox=request.name, command=self._redacted(request.command))
        output = Output(self.redactor, on_stdout, on_stderr)
        stream: AttachStream | None = None
        try:
            stream, reader = self._attach(made.handle, output, stdin if request.stdin else None)
            self._start(made.handle, output, reader)
            timed_out = self._collect(made.handle, reader, started + limit)
            exit_code = exit_status(self.api, made.handle)
            output.close()
            self._each("after_exit", made.handle)
        finally:
            try:
                self.dispose(made)
            finally:
                self._close_stream(stream)
        result = self._verdict(request, made.handle, output, exit_code, timed_out, time.monotonic() - started)
        for event, level, data in audit_records(result):
            self.audit(event, level, **data)
        if timed_out:
            self.audit("limit.breach", "High", sandbox=request.name, limit="timeout", limit_value=limit)
            exc = TimeoutExceeded("sandbox command", limit, sandbox=request.name,
                                  last_output=output.tail())
            exc.result = result  # type: ignore[attr-defined]
            raise exc
        return result

    # -- stages ------------------------------------------------------------------------------
    def create(self, request: CreateRequest) -> Made:
        """create → init → confine: the command has not run when this returns."""
        if moves_processes(self.confiners):
            request = as_user(self.api, request, keep_switch_caps(self.config))
        self._each("before_create", request)
        try:
            spec = self._spec(request)
            cid = self.api.create_container(spec, timeout=self.startup_timeout)
            handle = SandboxHandle(id=cid, name=request.name, limits=dict(request.limits),
                                   network_mode=spec["netns"]["nsmode"])
            made = Made(handle, cleanup.register(f"container {request.name}", lambda: self.api.remove_container(cid),
                                                  self.environment_id))
            try:
                self._init(handle, spec)
                self._confine(handle)
            except BaseException:
                self.dispose(made)
                raise
        except BaseException:
            self._each_quietly("create_failed", request)
            raise
        self.audit("sandbox.created", "Minimal", sandbox=request.name, image=request.image, kind=request.kind)
        if handle.facts:
            self.audit("sandbox.confined", "Medium", sandbox=request.name, **handle.facts)
        return made

    def _spec(self, request: CreateRequest) -> dict[str, Any]:
        network = request.network
        if isinstance(network, NetworkAttachment):
            network = (network.name, list(network.aliases))
        try:
            mounts = check_mounts(self.config, request.mounts, sockets=engine_sockets(self.api.url))
        except PolicyError as exc:
            self.audit("mount.refused", "High", sandbox=request.name, reason=str(exc))
            raise
        if mounts:
            self.audit("sandbox.mounts", "Medium", sandbox=request.name, mounts=msgspec.to_builtins(mounts))
        try:
            return build_spec(self.config, request.image, request.command, env=request.env, labels=request.labels,
                              name=request.name, ports=request.ports or None, network=network,
                              writable_paths=request.writable_paths, user=request.user, mounts=mounts,
                              workdir=request.workdir, stdin=request.stdin, system_mounts=request.system_mounts,
                              extra_caps=request.extra_caps, entrypoint=request.entrypoint)
        except NetworkPolicyViolation as exc:
            self.audit("network.refused", "High", sandbox=request.name, reason=str(exc))
            raise

    def _init(self, handle: SandboxHandle, spec: dict[str, Any]) -> None:
        """init, then the posture check: the process exists, its command has not run."""
        self.api.init_container(handle.id, timeout=self.startup_timeout)
        info = self.api.inspect_container(handle.id, posture=True)
        handle.pid = info.state.pid
        if not handle.pid:
            raise ContainerError(f"init left no process (state {info.state.status})", sandbox=handle.name)
        if info.posture is None:
            raise ContainerError("Podman did not report the container's isolation settings; "
                                 "the sandbox was not started", sandbox=handle.name)
        kernel = self._kernel_view(handle.pid) if self._kernel_view is not None else None
        problems = differences(spec, info.posture, kernel, read_seccomp_profile(spec.get("seccomp_profile_path")))
        if problems:
            self.audit("posture.mismatch", "Minimal", sandbox=handle.name, problems=problems)
            raise ContainerError("the container's isolation differs from the policy, the sandbox was not started: "
                                 + "; ".join(problems), sandbox=handle.name)

    def _confine(self, handle: SandboxHandle) -> None:
        t0 = time.perf_counter()
        self._each("after_init", handle)
        handle.confine_seconds = time.perf_counter() - t0

    def _attach(self, handle: SandboxHandle, output: Output,
                stdin: StdinSource | None = None) -> tuple[AttachStream, threading.Thread]:
        """Attach before start, so not a byte of output is missed; a thread pumps it."""
        stream = self.api.attach(handle.id, stdin=stdin)
        return stream, pump(output, stream, f"attach-{handle.name}", handle.name)

    def _start(self, handle: SandboxHandle, output: Output, reader: threading.Thread) -> None:
        try:
            self.api.start_container(handle.id, timeout=self.startup_timeout)
        except ContainerError as exc:
            reader.join(2)
            output.close()
            raise ContainerError(exc.reason, sandbox=handle.name,
                                 exit_code=exc.exit_code if exc.exit_code is not None else self._exit_code(handle),
                                 last_output=output.tail()) from None
        self.audit("sandbox.started", "Minimal", sandbox=handle.name)

    def _collect(self, handle: SandboxHandle, reader: threading.Thread, deadline: float) -> bool:
        """Wait for the output to end; past the deadline, kill. True when it timed out."""
        reader.join(max(0.0, deadline - time.monotonic()))
        if not reader.is_alive():
            return False
        self._kill(handle)
        reader.join(_DRAIN_SECONDS)
        return True

    def _verdict(self, request: CreateRequest, handle: SandboxHandle, output: Output, exit_code: int,
                 timed_out: bool, duration: float) -> RunResult:
        return RunResult(
            sandbox=handle.name, image=request.image, command=self._redacted(request.command), exit_code=exit_code,
            stdout=output.stdout.text(), stderr=output.stderr.text(), duration_seconds=duration, usage=handle.usage,
            redactions=output.counts(), timed_out=timed_out, oom_killed=handle.usage.oom_kills > 0,
            breaches=list(handle.breaches), truncated=output.truncated, confine_seconds=handle.confine_seconds,
        )

    def dispose(self, made: Made, *, read_usage: bool = False) -> None:
        """Remove the container, then release its confinement and forget the cleanup step.

        The container goes first: a cgroup can only be removed once it is empty, and its
        counters (peak memory, OOM kills) survive the processes, so ``read_usage`` can
        still read them for a detached service that ran until now.
        """
        try:
            self.api.remove_container(made.handle.id)
            if read_usage:
                self._each("after_exit", made.handle)
        finally:
            self._each_quietly("release", made.handle)
            if made.token:
                cleanup.done(made.token)

    # -- helpers ---------------------------------------------------------------------------
    @contextmanager
    def errors_redacted(self) -> Iterator[None]:
        """Whatever raised it (engine, confiner, stage), no error leaves with a secret in it."""
        try:
            yield
        except CleanroomError as exc:
            self._redact_error(exc)
            raise

    def _redact_error(self, exc: CleanroomError) -> None:
        exc.args = tuple(redact_again(self.redactor, a) if isinstance(a, str) else a for a in exc.args)

    def _each(self, hook: str, arg: Any) -> None:
        for confiner in self.confiners:
            getattr(confiner, hook)(arg)

    def _each_quietly(self, hook: str, arg: Any) -> None:
        """Undo steps: every confiner runs (newest first) even when one fails."""
        for confiner in reversed(self.confiners):
            try:
                getattr(confiner, hook)(arg)
            except Exception as exc:
                logger.warning("confinement undo step failed", hook=hook, error=str(exc))

    def _redacted(self, command: list[str] | None) -> list[str]:
        return [self.redact(a) for a in command or []]

    def _exit_code(self, handle: SandboxHandle) -> int | None:
        try:
            return self.api.inspect_container(handle.id).state.exit_code
        except CleanroomError:
            return None

    def _kill(self, handle: SandboxHandle) -> None:
        try:
            self.api.kill_container(handle.id)
        except CleanroomError as exc:
            logger.warning("kill failed", sandbox=handle.name, error=str(exc))

    @staticmethod
    def _close_stream(stream: AttachStream | None) -> None:
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:  # the connection may already be gone with the container
                logger.debug("attach stream close failed", error=type(exc).__name__)
