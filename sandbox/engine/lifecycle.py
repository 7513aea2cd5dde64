"""The life of one sandbox, in the order DESIGN.md fixes.

create → init → confinement hooks (the command has not run yet) → attach → start
→ redacted output streamed while it runs → wait (bounded by the timeout) → usage
→ remove. Nothing runs before confinement; nothing is seen before redaction.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from loguru import logger
from podman import api as podman_api
from podman.errors import APIError, NotFound
from requests.exceptions import ConnectionError as TransportError
from requests.exceptions import Timeout as TransportTimeout

from sandbox.engine import cleanup
from sandbox.engine.connection import CheckedAPI, Connection
from sandbox.engine.results import LimitBreach, RunResult, Usage
from sandbox.engine.spec import build_spec
from sandbox.errors import CleanroomError, ContainerError, NetworkPolicyViolation, TimeoutExceeded

_TAIL_LINES = 20
# Captured output per stream kept in memory; the live stream still sees everything.
MAX_CAPTURE_BYTES = 16 * 1024 * 1024


class SandboxHandle:
    """What confinement hooks see: an initialised container whose command has not run."""

    def __init__(self, *, id: str, name: str, pid: int, policy: Any, limits: dict[str, Any]) -> None:
        self.id = id
        self.name = name
        self.pid = pid
        self.policy = policy
        self.limits = limits  # per-call overrides of the policy's per-sandbox limits
        self.usage = Usage()
        self.breaches: list[LimitBreach] = []
        self.facts: dict[str, Any] = {}  # what hooks applied, read back, for the audit
        self.network_mode = "none"  # the namespace Podman made: "none" or "slirp4netns"
        self.confine_seconds = 0.0  # time spent in the confinement hooks (init → confined)


class Confiner(Protocol):
    """Each method is optional; the engine calls what a confiner defines."""

    def before_create(self, request: dict[str, Any]) -> None: ...
    def after_init(self, handle: SandboxHandle) -> None: ...
    def after_exit(self, handle: SandboxHandle) -> None: ...
    def release(self, handle: SandboxHandle) -> None: ...


class _Capture:
    """One output stream: bytes → UTF-8 text → redactor → consumer and buffer."""

    def __init__(self, redactor: Any, consumer: Callable[[str], None] | None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stream = redactor.stream() if redactor is not None else None
        self._consumer = consumer
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._consumer is not None:
            self._consumer(text)
        if self._size < MAX_CAPTURE_BYTES:
            self._parts.append(text)
            self._size += len(text)
        else:
            self.truncated = True

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        self._emit(self._stream.feed(text) if self._stream is not None else text)

    def close(self) -> None:
        text = self._decoder.decode(b"", final=True)
        if self._stream is not None:
            text = self._stream.feed(text) + self._stream.close()
        self._emit(text)

    def text(self) -> str:
        return "".join(self._parts)

    def counts(self) -> dict[str, int]:
        return dict(self._stream.counts) if self._stream is not None else {}


def _sum_counts(*parts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def _runtime_exit_code(message: str) -> int | None:
    """The shell's convention, as `podman run` reports it: 127 not found, 126 not executable."""
    low = message.lower()
    if "not found" in low or "no such file" in low:
        return 127
    if "permission denied" in low:
        return 126
    return None


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _api_message(exc: Exception) -> str:
    msg = getattr(exc, "explanation", None) or str(exc)
    return str(msg).splitlines()[0][:500]


class SandboxRunner:
    """Runs sandboxes for one environment over one Podman connection."""

    def __init__(
        self,
        connection: Connection,
        policy: Any,
        *,
        environment_id: str,
        redactor: Any = None,
        audit: Callable[..., Any] | None = None,
        confiners: list[Any] | None = None,
        labels: Callable[[str, str | None], dict[str, str]] | None = None,
    ) -> None:
        self.connection = connection
        self.policy = policy
        self.environment_id = environment_id
        self.redactor = redactor
        self._audit = audit or (lambda *a, **k: None)
        self.confiners = list(confiners or [])
        self._labels = labels

    # -- helpers -------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        for confiner in self.confiners:
            fn = getattr(confiner, hook, None)
            if fn is not None:
                fn(*args)

    def _remove(self, cid: str) -> None:
        try:
            self.connection.api().delete(
                f"/containers/{cid}", params={"force": True, "v": True, "timeout": 0}
            )
        except NotFound:
            pass

    def redact(self, text: str) -> str:
        return self.redactor.redact(text) if self.redactor is not None else text

    # -- create & init ----------------------------------------------------------------
    def create_initialised(
        self,
        image: str,
        command: list[str] | None,
        *,
        kind: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        ports: dict[int, int | None] | None = None,
        network: str | tuple[str, list[str]] | None = None,
        limits: dict[str, Any] | None = None,
        extra_labels: dict[str, str] | None = None,
        writable_paths: list[str] | dict[str, int] | None = None,
        user: str | None = None,
    ) -> tuple[SandboxHandle, int]:
        """Create, init and confine; returns the handle and its cleanup token.

        On any failure everything made so far is removed before the error leaves.
        """
        startup_timeout = float(self.policy.container_startup_timeout)
        sandbox_name = name or f"cleanroom-{kind}-{uuid.uuid4().hex[:12]}"
        labels = dict(self._labels(kind, sandbox_name) if self._labels else {})
        labels.update(extra_labels or {})
        request = {"image": image, "command": command, "name": sandbox_name, "kind": kind,
                   "ports": ports, "limits": dict(limits or {})}
        self._call("before_create", request)
        try:
            return self._create_and_init(request, image, command, sandbox_name, labels, env, ports, network,
                                         limits, writable_paths, startup_timeout, user)
        except BaseException:
            self._call("create_failed", request)
            raise

    def _create_and_init(self, request, image, command, sandbox_name, labels, env, ports, network, limits,
                         writable_paths, startup_timeout, user) -> tuple[SandboxHandle, int]:
        try:
            spec = build_spec(
                self.policy, image, command, env=env, labels=labels, name=sandbox_name,
                ports=ports, network=network, writable_paths=writable_paths, user=user,
            )
        except NetworkPolicyViolation as exc:
            self._audit("network.refused", "High", sandbox=sandbox_name, reason=str(exc))
            raise
        api = self.connection.api()
        try:
            resp = api.post(
                "/containers/create", data=json.dumps(spec),
                headers={"content-type": "application/json"}, timeout=startup_timeout,
            )
        except APIError as exc:
            message = _api_message(exc)
            if isinstance(exc, NotFound) or "image not known" in message or "no such image" in message.lower():
                raise ContainerError(
                    f"image {image} not found in this user's Podman storage (no registry is used: build "
                    f"the local images with `cleanroom images build` or `make images`): {message}",
                    sandbox=sandbox_name,
                ) from None
            raise ContainerError(f"create failed: {self.redact(message)}", sandbox=sandbox_name) from None
        except TransportTimeout:
            raise TimeoutExceeded("container create", startup_timeout, sandbox=sandbox_name) from None
        except TransportError as exc:
            raise ContainerError(f"lost the Podman service during create: {exc}", sandbox=sandbox_name) from None
        cid = resp.json()["Id"]
        handle = SandboxHandle(id=cid, name=sandbox_name, pid=0, policy=self.policy, limits=dict(limits or {}))
        handle.network_mode = spec["netns"]["nsmode"]
        token = cleanup.register(f"container {sandbox_name}", lambda: self._remove(cid), self.environment_id)
        try:
            api.post(f"/containers/{cid}/init", timeout=startup_timeout)
            state = api.get(f"/containers/{cid}/json").json()["State"]
            handle.pid = int(state.get("Pid") or 0)
            if not handle.pid:
                raise ContainerError(f"init left no process (state {state.get('Status')})", sandbox=sandbox_name)
            t0 = time.perf_counter()
            self._call("after_init", handle)
            handle.confine_seconds = time.perf_counter() - t0
        except BaseException as exc:
            code = _runtime_exit_code(_api_message(exc)) if isinstance(exc, APIError) else None
            self._release(handle)
            self._remove(cid)
            cleanup.done(token)
            if isinstance(exc, APIError):
                # An OCI runtime failure (e.g. the command does not exist) surfaces at init.
                raise ContainerError(
                    f"start failed at init: {self.redact(_api_message(exc))}", sandbox=sandbox_name,
                    exit_code=code,
                ) from None
            if isinstance(exc, TransportTimeout):
                raise TimeoutExceeded("container init", startup_timeout, sandbox=sandbox_name) from None
            raise
        self._audit("sandbox.created", "Minimal", sandbox=sandbox_name, image=image, kind=request["kind"])
        if handle.facts:
            self._audit("sandbox.confined", "Medium", sandbox=sandbox_name, **handle.facts)
        return handle, token

    def _release(self, handle: SandboxHandle) -> None:
        for confiner in reversed(self.confiners):
            fn = getattr(confiner, "release", None)
            if fn is not None:
                try:
                    fn(handle)
                except Exception as exc:
                    logger.warning("confinement release failed", sandbox=handle.name, error=str(exc))

    # -- run to completion ------------------------------------------------------------
    def run(
        self,
        image: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        name: str | None = None,
        limits: dict[str, Any] | None = None,
        network: str | tuple[str, list[str]] | None = None,
    ) -> RunResult:
        timeout = float(timeout if timeout is not None else self.policy.test_execution_timeout)
        started = time.monotonic()
        handle, token = self.create_initialised(
            image, command, kind="sandbox", name=name, env=env, limits=limits, network=network
        )
        self._audit("sandbox.command", "High", sandbox=handle.name, command=[self.redact(a) for a in command])
        out = _Capture(self.redactor, on_stdout)
        err = _Capture(self.redactor, on_stderr)
        timed_out = False
        exit_code = -1
        attach_client = self.connection.fresh_client()
        attach_api = CheckedAPI(attach_client.api)
        try:
            attach_error: list[BaseException] = []
            attached = threading.Event()

            def pump() -> None:
                try:
                    resp = attach_api.post(
                        f"/containers/{handle.id}/attach",
                        params={"stream": True, "stdout": True, "stderr": True, "logs": True},
                        stream=True,
                    )
                    attached.set()
                    for o, e in podman_api.stream_frames(resp, demux=True):
                        if o:
                            out.feed(o)
                        if e:
                            err.feed(e)
                except BaseException as exc:  # surfaced by the caller
                    attach_error.append(exc)
                finally:
                    attached.set()

            reader = threading.Thread(target=pump, name=f"attach-{handle.name}", daemon=True)
            reader.start()
            if not attached.wait(float(self.policy.container_startup_timeout)):
                raise ContainerError("could not attach to the sandbox's output in time", sandbox=handle.name)
            if attach_error:
                raise ContainerError(
                    f"attach failed: {self.redact(_api_message(attach_error[0]))}", sandbox=handle.name
                )
            api = self.connection.api()
            try:
                api.post(f"/containers/{handle.id}/start",
                                timeout=float(self.policy.container_startup_timeout))
            except APIError as exc:
                reader.join(2)
                out.close()
                err.close()
                raise ContainerError(
                    f"start failed: {self.redact(_api_message(exc))}", sandbox=handle.name,
                    exit_code=self._exit_code(handle.id), last_output=tail(out.text() + err.text()),
                ) from None
            except TransportTimeout:
                raise TimeoutExceeded("container start", float(self.policy.container_startup_timeout),
                                      sandbox=handle.name) from None
            self._audit("sandbox.started", "Minimal", sandbox=handle.name)

            deadline = started + timeout
            reader.join(max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                timed_out = True
                self._kill(handle.id)
                reader.join(10)
            exit_code = self._exit_status(handle)
            out.close()
            err.close()
            self._call("after_exit", handle)
        finally:
            attach_client.close()
            self._release(handle)
            try:
                self._remove(handle.id)
            finally:
                cleanup.done(token)
        duration = time.monotonic() - started
        self._audit("sandbox.removed", "Minimal", sandbox=handle.name, exit_code=exit_code)
        result = RunResult(
            sandbox=handle.name,
            image=image,
            command=[self.redact(a) for a in command],
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            duration_seconds=duration,
            usage=handle.usage,
            redactions=_sum_counts(out.counts(), err.counts()),
            timed_out=timed_out,
            oom_killed=handle.usage.oom_kills > 0,
            breaches=list(handle.breaches),
            truncated=out.truncated or err.truncated,
            confine_seconds=handle.confine_seconds,
        )
        if result.redactions:
            self._audit("redaction.counts", "High", sandbox=handle.name, counts=result.redactions)
        # Maximum: what was shown can later be proven unchanged, without storing it.
        self._audit("sandbox.output", "Maximum", sandbox=handle.name,
                    stdout_sha256=hashlib.sha256(result.stdout.encode()).hexdigest(),
                    stderr_sha256=hashlib.sha256(result.stderr.encode()).hexdigest())
        self._audit("sandbox.verdict", "Medium", sandbox=handle.name, verdict=result.verdict,
                    exit_code=exit_code, duration_seconds=round(duration, 3),
                    breaches=[msgspec_to_builtins(b) for b in result.breaches])
        if timed_out:
            self._audit("limit.breach", "High", sandbox=handle.name, limit="timeout", limit_value=timeout)
            exc = TimeoutExceeded(
                "sandbox command", timeout, sandbox=handle.name,
                last_output=tail(result.stdout + result.stderr),
            )
            exc.result = result  # type: ignore[attr-defined]
            raise exc
        return result

    # -- long-running services -----------------------------------------------------------
    def start_service(
        self,
        image: str,
        command: list[str] | None,
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        ports: dict[int, int | None] | None = None,
        network: str | tuple[str, list[str]] | None = None,
        limits: dict[str, Any] | None = None,
        extra_labels: dict[str, str] | None = None,
        writable_paths: list[str] | dict[str, int] | None = None,
        user: str | None = None,
        keep: bool = False,
    ) -> ServiceHandle:
        """Create, confine and start a detached container whose output is kept redacted.

        ``keep=True`` (singletons) leaves it running past this process; otherwise it is
        removed by ``ServiceHandle.remove`` or, failing that, at exit.
        """
        handle, token = self.create_initialised(
            image, command, kind="service", name=name, env=env, ports=ports, network=network,
            limits=limits, extra_labels=extra_labels, writable_paths=writable_paths, user=user,
        )
        api = self.connection.api()
        try:
            api.post(f"/containers/{handle.id}/start",
                            timeout=float(self.policy.container_startup_timeout))
            info = api.get(f"/containers/{handle.id}/json").json()
        except BaseException as exc:
            self._release(handle)
            self._remove(handle.id)
            cleanup.done(token)
            if isinstance(exc, APIError):
                raise ContainerError(f"start failed: {self.redact(_api_message(exc))}", sandbox=handle.name) from None
            raise
        self._audit("sandbox.started", "Minimal", sandbox=handle.name, kind="service")
        if keep:
            # A kept singleton outlives us by design; its cgroup stays with it.
            cleanup.done(token)
            token = 0
        return ServiceHandle(self, handle, token, host_ports(info))

    def _exit_status(self, handle: SandboxHandle, timeout: float = 30.0) -> int:
        """The exit code once Podman has recorded the exit.

        The output stream has already ended, so the process is gone; inspect sees the
        exit within milliseconds, while the wait endpoint answers only after Podman's
        own cleanup (~90 ms here). The poll backs off so a slow host is not hammered.
        """
        api = self.connection.api()
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                state = api.get(f"/containers/{handle.id}/json").json()["State"]
            except APIError as exc:
                logger.warning("inspect after exit failed", sandbox=handle.name, error=str(exc))
                return -1
            if state.get("Status") in ("exited", "stopped") or not state.get("Running", True):
                return int(state.get("ExitCode", -1))
            if time.monotonic() > deadline:
                logger.warning("exit not recorded in time", sandbox=handle.name, status=state.get("Status"))
                return -1
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def _exit_code(self, cid: str) -> int | None:
        try:
            state = self.connection.api().get(f"/containers/{cid}/json").json()["State"]
            return int(state.get("ExitCode")) if state.get("ExitCode") is not None else None
        except Exception:
            return None

    def _kill(self, cid: str) -> None:
        try:
            self.connection.api().post(f"/containers/{cid}/kill", params={"signal": "SIGKILL"})
        except (APIError, CleanroomError) as exc:
            logger.warning("kill failed", sandbox=cid[:12], error=str(exc))


def demux_frames(data: bytes) -> list[bytes]:
    """Payloads of Podman's multiplexed stream (8-byte header: stream, 0, 0, 0, size BE32)."""
    out = []
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4:i + 8], "big")
        out.append(data[i + 8:i + 8 + size])
        i += 8 + size
    return out


def host_ports(info: dict[str, Any]) -> dict[int, int]:
    """container port → host port, from an inspect result."""
    out: dict[int, int] = {}
    ports = ((info.get("NetworkSettings") or {}).get("Ports")) or {}
    for key, bindings in ports.items():
        if not bindings:
            continue
        cport = int(str(key).split("/")[0])
        for b in bindings:
            if b.get("HostPort"):
                out[cport] = int(b["HostPort"])
                break
    return out


class ServiceHandle:
    """A running detached container: its ports, its redacted logs, its removal."""

    def __init__(self, runner: SandboxRunner, handle: SandboxHandle, token: int, ports: dict[int, int]) -> None:
        self.runner = runner
        self.handle = handle
        self.id = handle.id
        self.name = handle.name
        self.ports = ports
        self._token = token
        self.removed = False

    def logs(self, tail_lines: int | None = None) -> str:
        """The container's output so far, redacted."""
        params: dict[str, Any] = {"stdout": True, "stderr": True}
        if tail_lines:
            params["tail"] = str(tail_lines)
        resp = self.runner.connection.api().get(f"/containers/{self.id}/logs", params=params)
        return self.runner.redact(b"".join(demux_frames(resp.content)).decode("utf-8", errors="replace"))

    def state(self) -> dict[str, Any]:
        try:
            return self.runner.connection.api().get(f"/containers/{self.id}/json").json()["State"]
        except NotFound:
            return {"Status": "removed", "Running": False}
        except APIError as exc:  # Podman could not inspect it: it is not a usable service
            return {"Status": "unknown", "Running": False, "Error": _api_message(exc)}

    def is_running(self) -> bool:
        return bool(self.state().get("Running"))

    def exec(self, command: list[str], *, env: dict[str, str] | None = None,
             timeout: float | None = None) -> tuple[int, str]:
        """Run a command inside; returns (exit code, redacted combined output)."""
        api = self.runner.connection.api()
        body = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        if env:
            body["Env"] = [f"{k}={v}" for k, v in env.items()]
        exec_id = api.post(f"/containers/{self.id}/exec", data=json.dumps(body),
                           headers={"content-type": "application/json"}).json()["Id"]
        resp = api.post(f"/exec/{exec_id}/start", data=json.dumps({"Detach": False, "Tty": False}),
                        headers={"content-type": "application/json"}, stream=True, timeout=timeout)
        chunks = [o or e or b"" for o, e in podman_api.stream_frames(resp, demux=True)]
        code = api.get(f"/exec/{exec_id}/json").json().get("ExitCode", -1)
        text = self.runner.redact(b"".join(chunks).decode("utf-8", errors="replace"))
        self.runner._audit("sandbox.exec", "High", sandbox=self.name,
                           command=[self.runner.redact(a) for a in command], exit_code=code)
        return int(code if code is not None else -1), text

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        # The container goes first: its cgroup can only be removed once it is empty,
        # and the counters (peak memory, OOM kills) survive its processes.
        try:
            self.runner._remove(self.id)
            self.runner._call("after_exit", self.handle)
        finally:
            self.runner._release(self.handle)
            if self._token:
                cleanup.done(self._token)
        self.runner._audit("sandbox.removed", "Minimal", sandbox=self.name, kind="service")


def msgspec_to_builtins(obj: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(obj)
