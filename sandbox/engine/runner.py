"""The life of one sandbox, in the order DESIGN.md fixes, one small stage each.

create → init → confine → attach → start → collect → verdict → remove → audit.
Nothing runs before confinement; nothing is seen before redaction. Any failure
removes everything made so far before the error (a ``CleanroomError``) leaves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from loguru import logger

from sandbox.engine.exits import exit_status
from sandbox.engine.helper.build import command_request
from sandbox.engine.helper.users import as_user, keep_switch_caps, moves_processes
from sandbox.engine.output import Output, errors_redacted, pump, redact_text
from sandbox.engine.podman.api import AttachStream, PodmanAPI, StdinSource
from sandbox.engine.posture import KernelReader, differences, read_kernel_view, read_seccomp_profile
from sandbox.engine.request_spec import spec_for
from sandbox.engine.results import RunResult, audit_records
from sandbox.engine.teardown import cleanup
from sandbox.engine.teardown.removal import BackgroundRemoval, Made
from sandbox.engine.types import AuditFn, Confiner, CreateRequest, NoObserver, SandboxHandle
from sandbox.errors import CleanroomError, ContainerError, TimeoutExceeded

if TYPE_CHECKING:
    from sandbox.engine.images import Images
    from sandbox.engine.pool import Member, SandboxPool
    from sandbox.policy.config import CleanroomConfig
    from sandbox.redact.redactor import Redactor

_DRAIN_SECONDS = 10.0  # how long the output reader may take to drain after a timeout kill


class SandboxRunner(BackgroundRemoval):
    """Runs the sandboxes of one environment through one ``PodmanAPI``; services are
    made by the same ``create`` and ``dispose`` (see ``ServiceLauncher``)."""

    def __init__(self, api: PodmanAPI, config: CleanroomConfig, *, environment_id: str,
                 redactor: Redactor | None = None, audit: AuditFn | None = None, confiners: Sequence[Confiner] = (),
                 labels: Callable[[str, str], dict[str, str]] | None = None,
                 kernel_view: KernelReader | None = read_kernel_view, unconfined: str | None = None) -> None:
        self.api = api
        self.config = config
        self.environment_id = environment_id
        self.redactor = redactor
        self.audit: AuditFn = audit or (lambda *a, **k: None)
        self.confiners = tuple(confiners)
        self._labels = labels
        self._kernel_view = kernel_view  # None only where there is no kernel to ask (unit tests)
        self.unconfined = unconfined  # set when the environment runs without cgroup limits, by choice
        self.observer = NoObserver()  # any StageObserver: told when each stage begins (monitoring, tracing)
        self.pool: SandboxPool | None = None  # when the policy asks for one
        self.aliases: dict[str, str] = {}  # name a run asked with → the pool member running it
        self.images: Images | None = None  # the environment's Images: image configs looked up once for a burst of runs

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
        """``stdin`` (bytes or a binary file) is fed to the command, then end of file (the request must
        have ``stdin=True``). A warm pool's member made for the same options runs it, if one waits."""
        with errors_redacted(self.redactor):
            member = self.pool.take(request) if self.pool is not None else None
            if member is not None:
                return self._run_warm(request, member, timeout, on_stdout, on_stderr, stdin)
            return self._run(request, timeout, on_stdout, on_stderr, stdin)

    def _run(self, request: CreateRequest, timeout: float | None, on_stdout: Callable[[str], None] | None,
             on_stderr: Callable[[str], None] | None, stdin: StdinSource | None = None) -> RunResult:
        limit = float(timeout if timeout is not None else self.config.test_execution_timeout)
        started = time.monotonic()
        made = self.create(request)
        output = self._output(request, made.handle, on_stdout, on_stderr)
        stream: AttachStream | None = None
        generation = self.api.restarts
        finished = False
        try:
            self.observer.stage(request.name, "start")
            stream, reader = self._attach(made.handle, output, stdin if request.stdin else None)
            self._start(made.handle, output, reader)
            timed_out, exit_code = self._await(made.handle, output, reader, started + limit, generation)
            finished = not (timed_out or output.lost)
        finally:
            self.settle(made, stream, finished, exit_code if finished else None)
        return self._result(request, made.handle, output, exit_code, timed_out, time.monotonic() - started, limit,
                            removed=not finished)

    def _run_warm(self, request: CreateRequest, member: Member, timeout: float | None,
                  on_stdout: Callable[[str], None] | None, on_stderr: Callable[[str], None] | None,
                  stdin: StdinSource | None) -> RunResult:
        """A pool member runs it: the command goes down the waiting helper's stdin, then
        the run's own stdin; the member is removed in the background afterwards."""
        limit = float(timeout if timeout is not None else self.config.test_execution_timeout)
        started = time.monotonic()
        handle = member.made.handle
        self.aliases[request.name] = handle.id  # a test's timeout kills it by the name it asked with
        output = self._output(request, handle, on_stdout, on_stderr)
        generation = self.api.restarts
        finished = False
        try:
            for stage in ("create", "start"):
                self.observer.stage(handle.name, stage)
            member.stream.feed(stdin if stdin is not None else b"",
                               prefix=command_request(member.program(request), request.env))
            reader = pump(output, member.stream, f"attach-{handle.name}", handle.name)
            self.audit("sandbox.started", "Minimal", sandbox=handle.name)
            timed_out, exit_code = self._await(handle, output, reader, started + limit, generation)
            finished = not (timed_out or output.lost)
        finally:
            self.aliases.pop(request.name, None)
            self.settle(member.made, member.stream, finished, exit_code if finished else None)
        return self._result(request, handle, output, exit_code, timed_out, time.monotonic() - started, limit,
                            removed=not finished)

    def _output(self, request: CreateRequest, handle: SandboxHandle, on_stdout: Callable[[str], None] | None,
                on_stderr: Callable[[str], None] | None) -> Output:
        self.audit("sandbox.command", "High", sandbox=handle.name, command=self._redacted(request.command))
        return Output(self.redactor, on_stdout, on_stderr)

    def _await(self, handle: SandboxHandle, output: Output, reader: threading.Thread, deadline: float,
               generation: int) -> tuple[bool, int]:
        """collect → exit → final figures: (timed out, exit code)."""
        self.observer.stage(handle.name, "run")
        timed_out = self._collect(handle, reader, deadline)
        self.observer.stage(handle.name, "wait")
        exit_code = exit_status(self.api, handle)
        if self.api.restarts != generation:  # the stream ended with the old service, not the sandbox
            output.lost = output.lost or "the service was restarted"
        output.close()
        self._each("after_exit", handle)
        return timed_out, exit_code

    def _result(self, request: CreateRequest, handle: SandboxHandle, output: Output, exit_code: int,
                timed_out: bool, duration: float, limit: float, *, removed: bool = True) -> RunResult:
        """The verdict, audited; ``removed=False``: its removal is audited when it happens."""
        if output.lost:
            self.audit("sandbox.lost", "Minimal", sandbox=handle.name, reason=output.lost)
            raise ContainerError(output.broken(), sandbox=handle.name, last_output=output.tail())
        result = RunResult(
            sandbox=handle.name, image=request.image, command=self._redacted(request.command), exit_code=exit_code,
            stdout=output.stdout.text(), stderr=output.stderr.text(), duration_seconds=duration, usage=handle.usage,
            redactions=output.counts(), timed_out=timed_out, oom_killed=handle.usage.oom_kills > 0,
            breaches=list(handle.breaches), truncated=output.truncated, confine_seconds=handle.confine_seconds,
            unconfined=self.unconfined)
        for event, level, data in audit_records(result)[0 if removed else 1:]:
            self.audit(event, level, **data)
        if timed_out:
            self.audit("limit.breach", "High", sandbox=handle.name, limit="timeout", limit_value=limit)
            exc = TimeoutExceeded("sandbox command", limit, sandbox=handle.name, last_output=output.tail())
            exc.result = result  # type: ignore[attr-defined]
            raise exc
        return result

    # -- stages ------------------------------------------------------------------------------
    def create(self, request: CreateRequest, *, observed: bool = True) -> Made:
        """create → init → confine: the command has not run when this returns.
        ``observed=False`` (a warm pool's member, made ahead) tells the observer nothing."""
        stage = (self.observer if observed else NoObserver()).stage
        if moves_processes(self.confiners):
            request = as_user(self.images or self.api, request, keep_switch_caps(self.config))
        self._each("before_create", request)
        stage(request.name, "create")
        try:
            spec = spec_for(self.config, request, self.audit, self.api.url)
            cid = self.api.create_container(spec, timeout=self.startup_timeout)
            handle = SandboxHandle(id=cid, name=request.name, limits=dict(request.limits),
                                   network_mode=spec["netns"]["nsmode"])
            made = Made(handle, cleanup.register(f"container {request.name}", lambda: self.api.remove_container(cid),
                                                  self.environment_id))
            try:
                stage(handle.name, "init")
                self._init(handle, spec)
                stage(handle.name, "confine")
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

    def dispose(self, made: Made, *, read_usage: bool = False, observed: bool = True) -> None:
        """Remove the container, then release its confinement and forget the cleanup step. The container
        goes first: a cgroup can only be removed once it is empty, and its counters (peak memory, OOM kills)
        survive the processes, so ``read_usage`` still reads a service's. ``observed=False``: a removal
        in the background, whose stages the run already marked."""
        stage = (self.observer if observed else NoObserver()).stage
        stage(made.handle.name, "remove")
        try:
            self.api.remove_container(made.handle.id)
            if read_usage:
                self._each("after_exit", made.handle)
        finally:
            self._each_quietly("release", made.handle)
            if made.token:
                cleanup.done(made.token)
            stage(made.handle.name, "done")

    def _each(self, hook: str, arg: object) -> None:
        for confiner in self.confiners:
            getattr(confiner, hook)(arg)

    def _each_quietly(self, hook: str, arg: object) -> None:
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
