"""``PodmanAPI`` over libpod's REST API, through podman-py's HTTP client.

The one place where transport and HTTP failures become ``CleanroomError``s: a raw
``APIError`` or ``requests`` exception never leaves this module, and every message
Podman sends back passes the redactor first (it may quote the command or its
environment).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

from loguru import logger
from podman import PodmanClient
from podman.errors import APIError, NotFound
from requests import Response
from requests.exceptions import ConnectionError as TransportError
from requests.exceptions import Timeout as TransportTimeout

from sandbox.engine.podman.api import ContainerInfo, ContainerSummary, NetworkSummary, StdinSource
from sandbox.engine.podman.connection import START_HINT, probe, resolve_url
from sandbox.engine.podman.decode import container_info, podman_message, runtime_exit_code
from sandbox.engine.podman.frames import Frame, MalformedStream, read_frames
from sandbox.engine.podman.libpod_images import ImageCalls
from sandbox.engine.podman.libpod_session import SessionCalls, upgraded
from sandbox.engine.podman.recovery import managed_service, restart
from sandbox.engine.podman.upgrade import UpgradedAttach, attach_path
from sandbox.errors import CleanroomError, ContainerError, ContainerNotFound, EngineUnavailable, TimeoutExceeded

_JSON = {"content-type": "application/json"}
_DEFAULT_TIMEOUT = 60.0
_RETRY = "retry"  # internal: the service was restarted before this call ever reached it


def _all_frames(resp: Response, what: str) -> list[Frame]:
    try:
        return list(read_frames(resp.raw.read))
    except MalformedStream as exc:
        raise ContainerError(f"{what}: {exc}") from None
    finally:
        resp.close()


class _Attached:
    """One attach request on its own connection (a stream holds its connection)."""

    def __init__(self, client: PodmanClient, response: Response) -> None:
        self._client = client
        self._response = response

    def __iter__(self) -> Iterator[Frame]:
        return read_frames(self._response.raw.read)

    def close(self) -> None:
        # Only the session: closing the response would wait for the buffered reader
        # that the output thread may still be blocked in; the container's removal
        # ends that read, and the response goes with it.
        try:
            self._client.close()
        except Exception as exc:  # the connection may already be gone with the service
            logger.debug("attach session close failed", error=type(exc).__name__)


class LibpodAPI(SessionCalls, ImageCalls):
    """One resolved service URL; a keep-alive client per thread (requests sessions are
    not thread-safe, and the engine runs sandboxes concurrently)."""

    def __init__(self, url: str | None = None, *, redact: Callable[[str], str] | None = None,
                 timeout: float = _DEFAULT_TIMEOUT,
                 on_restart: Callable[[str, int, str], None] | None = None) -> None:
        self.url = resolve_url(url)
        self._redact = redact or (lambda s: s)
        self._timeout = timeout
        self._managed = managed_service(self.url)
        self._restarted = False
        self.restarts = 0
        self._on_restart = on_restart  # (url, pid, during what): the environment audits it
        self._local = threading.local()
        self._clients: list[PodmanClient] = []
        self._lock = threading.Lock()

    # -- transport -------------------------------------------------------------------
    def _client(self) -> PodmanClient:
        c = getattr(self._local, "client", None)
        if c is None:
            c = PodmanClient(base_url=self.url)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def _request(self, method: str, path: str, what: str, *, sandbox: str | None = None,
                 timeout: float | None = None, client: PodmanClient | None = None, runtime: bool = False,
                 **kw: Any) -> Response:
        """Send one request; any failure leaves as a CleanroomError (never chained to the
        dependency's exception, whose text is not redacted). A managed service found dead
        is restarted once, and a call that never reached it is sent again."""
        api = (client or self._client()).api
        if not kw.get("stream"):
            kw["timeout"] = timeout or self._timeout  # a slow service is an error, never a hang
        elif timeout is not None:
            kw["timeout"] = timeout
        error: CleanroomError
        for attempt in (1, 2):
            try:
                resp: Response = getattr(api, method)(path, **kw)
                resp.raise_for_status()
                return resp
            except NotFound as exc:
                error = ContainerNotFound(f"{what}: {self._redact(podman_message(exc))}", sandbox=sandbox)
            except APIError as exc:
                if exc.response is not None:
                    msg = self._redact(podman_message(exc))
                    error = ContainerError(f"{what} failed: {msg}", sandbox=sandbox,
                                           exit_code=runtime_exit_code(msg) if runtime else None)
                elif isinstance(exc.__cause__, TransportTimeout):
                    error = TimeoutExceeded(what, kw.get("timeout") or self._timeout, sandbox=sandbox)
                else:  # podman-py wraps transport failures in an APIError without a response
                    error = self._lost(what, exc.__cause__)
                    if attempt == 1 and self._recovered(exc.__cause__, what):
                        continue
            except TransportTimeout:
                error = TimeoutExceeded(what, kw.get("timeout") or self._timeout, sandbox=sandbox)
            except TransportError as exc:
                error = self._lost(what, exc)
                if attempt == 1 and self._recovered(exc, what):
                    continue
            break
        raise error

    def _lost(self, what: str, cause: BaseException | None) -> EngineUnavailable:
        fix = START_HINT if self._managed is None else (
            "cleanroom manages this service and restarts it once per environment; it did not come back: "
            "see ~/.local/state/cleanroom/podman-service.log, or run scripts/setup-host.sh as root")
        return EngineUnavailable([(self.url, f"the service stopped answering during {what} "
                                             f"({type(cause).__name__ if cause else 'no answer'})")], fix)

    def _recovered(self, cause: BaseException | None, what: str) -> bool:
        """Restart a dead managed service (once); True when the failed call may be sent
        again: it never reached the service (no connection was made)."""
        if self._managed is None or self._restarted or probe(self.url) is None:
            return False
        self._restarted = True
        try:
            pid = restart(self._managed)
            self.restarts += 1
        except (OSError, subprocess.SubprocessError) as exc:
            logger.error("restarting the Podman service failed", url=self.url, error=str(exc))
            return False
        self.close()  # keep-alive connections to the dead service are useless
        if self._on_restart is not None:
            self._on_restart(self.url, pid, what)
        return "Unable to make connection" in repr(cause) or "Connection refused" in repr(cause)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            try:
                c.close()
            except Exception:  # closing a dead keep-alive connection may fail; nothing to do
                pass

    # -- service ---------------------------------------------------------------------
    def ping(self) -> bool:
        return self._request("get", "/_ping", "ping").status_code == 200

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._request("get", "/info", "info").json()
        return info

    def image_exists(self, reference: str) -> bool:
        try:
            return self._request("get", f"/images/{reference}/exists", "image lookup").status_code == 204
        except ContainerNotFound:
            return False

    # -- containers ------------------------------------------------------------------
    def create_container(self, spec: dict[str, Any], *, timeout: float) -> str:
        name = spec.get("name")
        try:
            resp = self._request("post", "/containers/create", "container create", sandbox=name,
                                 timeout=timeout, data=json.dumps(spec), headers=_JSON)
        except ContainerError as exc:
            low = str(exc).lower()
            if isinstance(exc, ContainerNotFound) or "image not known" in low or "no such image" in low:
                raise ContainerError(
                    f"image {spec.get('image')} not found in this user's Podman storage (no registry is used: "
                    f"build the local images with `cleanroom images build` or `make images`)", sandbox=name,
                ) from None
            raise
        return str(resp.json()["Id"])

    def init_container(self, cid: str, *, timeout: float) -> None:
        # An OCI runtime failure (e.g. the command does not exist) surfaces here.
        self._request("post", f"/containers/{cid}/init", "start", timeout=timeout, runtime=True)

    def attach(self, cid: str, *, stdin: StdinSource | None = None) -> _Attached | UpgradedAttach:
        if stdin is not None:
            return self._attach_stdin(cid, stdin)
        client = PodmanClient(base_url=self.url)
        try:
            resp = self._request("post", f"/containers/{cid}/attach", "attach", client=client, stream=True,
                                 # No log replay: attached before start, nothing is missed, and Podman
                                 # 4.3 replays a log line in a frame one byte short (cut or doubled output).
                                 params={"stream": True, "stdout": True, "stderr": True, "logs": False})
        except BaseException:
            client.close()
            raise
        return _Attached(client, resp)

    def _attach_stdin(self, cid: str, stdin: StdinSource) -> UpgradedAttach:
        return upgraded(self.url, attach_path(cid), "attach with stdin", self._redact, stdin=stdin)

    def attach_held(self, cid: str) -> UpgradedAttach:
        return upgraded(self.url, attach_path(cid), "attach with stdin", self._redact)

    def start_container(self, cid: str, *, timeout: float) -> None:
        self._request("post", f"/containers/{cid}/start", "start", timeout=timeout, runtime=True)

    def inspect_container(self, cid: str, *, posture: bool = False) -> ContainerInfo:
        return container_info(self._request("get", f"/containers/{cid}/json", "inspect").json(), posture)

    def container_size(self, cid: str) -> int:
        data = self._request("get", f"/containers/{cid}/json", "size", params={"size": True}).json()
        return int(data.get("SizeRw") or 0)

    def kill_container(self, cid: str, signal: str = "SIGKILL") -> None:
        self._request("post", f"/containers/{cid}/kill", "kill", params={"signal": signal})

    def remove_container(self, cid: str) -> None:
        # libpod's delete honours `timeout`, not `t` (with `t` it waited 10 s).
        try:
            self._request("delete", f"/containers/{cid}", "remove",
                          params={"force": True, "v": True, "timeout": 0})
        except ContainerNotFound:
            pass

    def container_logs(self, cid: str, *, tail: int | None = None) -> list[Frame]:
        params: dict[str, Any] = {"stdout": True, "stderr": True}
        if tail:
            params["tail"] = str(tail)
        return _all_frames(self._request("get", f"/containers/{cid}/logs", "logs", params=params, stream=True), "logs")

    def exec_run(self, cid: str, command: list[str], *, env: dict[str, str] | None = None,
                 timeout: float | None = None) -> tuple[int, list[Frame]]:
        body: dict[str, Any] = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        if env:
            body["Env"] = [f"{k}={v}" for k, v in env.items()]
        exec_id = self._request("post", f"/containers/{cid}/exec", "exec create", data=json.dumps(body),
                                headers=_JSON).json()["Id"]
        resp = self._request("post", f"/exec/{exec_id}/start", "exec", timeout=timeout, stream=True,
                             data=json.dumps({"Detach": False, "Tty": False}), headers=_JSON)
        frames = _all_frames(resp, "exec")
        code = self._request("get", f"/exec/{exec_id}/json", "exec inspect").json().get("ExitCode")
        return (int(code) if code is not None else -1), frames

    def list_containers(self, *, labels: list[str]) -> list[ContainerSummary]:
        found = self._request("get", "/containers/json", "list containers",
                              params={"all": True, "filters": json.dumps({"label": labels})}).json() or []
        return [ContainerSummary(id=c["Id"], name=(c.get("Names") or [c["Id"][:12]])[0], state=c.get("State", ""),
                                 labels=dict(c.get("Labels") or {})) for c in found]

    # -- networks --------------------------------------------------------------------
    def create_network(self, name: str, *, labels: dict[str, str], exist_ok: bool = False) -> None:
        # dns_enabled: the API's default is off (the CLI's is on); names are the point.
        try:
            self._request("post", "/networks/create", "network create", headers=_JSON,
                          data=json.dumps({"name": name, "labels": labels, "dns_enabled": True}))
        except ContainerError as exc:
            if not (exist_ok and ("already" in str(exc).lower() or "exists" in str(exc).lower())):
                raise

    def connect_network(self, name: str, cid: str, aliases: list[str]) -> None:
        try:
            self._request("post", f"/networks/{name}/connect", "network connect", headers=_JSON,
                          data=json.dumps({"container": cid, "aliases": aliases}))
        except ContainerError as exc:
            if "already" not in str(exc).lower():
                raise

    def disconnect_network(self, name: str, cid: str) -> None:
        self._request("post", f"/networks/{name}/disconnect", "network disconnect", headers=_JSON,
                      data=json.dumps({"container": cid}))

    def remove_network(self, name: str, *, force: bool = False) -> None:
        try:
            self._request("delete", f"/networks/{name}", "network remove", params={"force": force})
        except ContainerNotFound:
            pass

    def list_networks(self, *, labels: list[str]) -> list[NetworkSummary]:
        found = self._request("get", "/networks/json", "list networks",
                              params={"filters": json.dumps({"label": labels})}).json() or []
        return [NetworkSummary(name=n.get("name") or n.get("Name"), labels=dict(n.get("labels") or n.get("Labels")
                                                                                 or {})) for n in found]
