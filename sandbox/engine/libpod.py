"""``PodmanAPI`` over libpod's REST API, through podman-py's HTTP client.

The one place where transport and HTTP failures become ``CleanroomError``s: a raw
``APIError`` or ``requests`` exception never leaves this module, and every message
Podman sends back passes the redactor first (it may quote the command or its
environment).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from podman import PodmanClient
from podman.errors import APIError, NotFound
from requests.exceptions import ConnectionError as TransportError
from requests.exceptions import Timeout as TransportTimeout

from sandbox.engine.api import ContainerInfo, ContainerState, ContainerSummary, NetworkSummary, StdinSource
from sandbox.engine.connection import START_HINT, resolve_url
from sandbox.engine.frames import Frame, read_frames
from sandbox.engine.libpod_images import ImageCalls
from sandbox.engine.libpod_session import SessionCalls, upgraded
from sandbox.engine.posture import posture_from_inspect
from sandbox.engine.upgrade import UpgradedAttach, attach_path
from sandbox.errors import CleanroomError, ContainerError, ContainerNotFound, EngineUnavailable, TimeoutExceeded

_JSON = {"content-type": "application/json"}
_DEFAULT_TIMEOUT = 60.0


def runtime_exit_code(message: str) -> int | None:
    """The shell's convention, as `podman run` reports it: 127 not found, 126 not executable."""
    low = message.lower()
    if "not found" in low or "no such file" in low:
        return 127
    if "permission denied" in low:
        return 126
    return None


def _podman_message(exc: Exception) -> str:
    msg = getattr(exc, "explanation", None) or str(exc)
    return str(msg).splitlines()[0][:500] if str(msg) else type(exc).__name__


def _runtime_spec(data: dict[str, Any]) -> dict[str, Any] | None:
    """The OCI runtime spec Podman wrote for the runtime: exactly what will run. The
    rootless service and the engine share a user, so the file is readable here."""
    path = data.get("OCIConfigPath")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (TypeError, OSError, ValueError):
        return None


def _info_from(data: dict[str, Any], posture: bool = False) -> ContainerInfo:
    state = data.get("State") or {}
    exit_code = state.get("ExitCode")
    return ContainerInfo(
        id=data["Id"], name=str(data.get("Name", "")).lstrip("/"),
        state=ContainerState(status=str(state.get("Status", "unknown")), running=bool(state.get("Running")),
                             pid=int(state.get("Pid") or 0), exit_code=None if exit_code is None else int(exit_code),
                             error=str(state.get("Error") or "")),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
        ports=_host_ports(data),
        posture=posture_from_inspect(data, _runtime_spec(data)) if posture else None,
    )


def _host_ports(data: dict[str, Any]) -> dict[int, int]:
    out: dict[int, int] = {}
    ports = ((data.get("NetworkSettings") or {}).get("Ports")) or {}
    for key, bindings in ports.items():
        for b in bindings or []:
            if b.get("HostPort"):
                out[int(str(key).split("/")[0])] = int(b["HostPort"])
                break
    return out


class _Attached:
    """One attach request on its own connection (a stream holds its connection)."""

    def __init__(self, client: PodmanClient, response: Any) -> None:
        self._client = client
        self._response = response

    def __iter__(self) -> Iterator[Frame]:
        return read_frames(self._response.raw.read)

    def close(self) -> None:
        # Only the session: closing the response would wait for the buffered reader
        # that the output thread may still be blocked in; the container's removal
        # ends that read, and the response goes with it.
        self._client.close()


class LibpodAPI(SessionCalls, ImageCalls):
    """One resolved service URL; a keep-alive client per thread (requests sessions are
    not thread-safe, and the engine runs sandboxes concurrently)."""

    def __init__(self, url: str | None = None, *, redact: Callable[[str], str] | None = None) -> None:
        self.url = resolve_url(url)
        self._redact = redact or (lambda s: s)
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
                 **kw: Any) -> Any:
        """Send one request; any failure leaves as a CleanroomError (never chained to the
        dependency's exception, whose text is not redacted)."""
        api = (client or self._client()).api
        if timeout is not None:
            kw["timeout"] = timeout
        error: CleanroomError
        try:
            resp = getattr(api, method)(path, **kw)
            resp.raise_for_status()
            return resp
        except NotFound as exc:
            error = ContainerNotFound(f"{what}: {self._redact(_podman_message(exc))}", sandbox=sandbox)
        except APIError as exc:
            msg = self._redact(_podman_message(exc))
            error = ContainerError(f"{what} failed: {msg}", sandbox=sandbox,
                                   exit_code=runtime_exit_code(msg) if runtime else None)
        except TransportTimeout:
            error = TimeoutExceeded(what, timeout or _DEFAULT_TIMEOUT, sandbox=sandbox)
        except TransportError as exc:
            error = EngineUnavailable([(self.url, f"the service stopped answering during {what} "
                                                  f"({type(exc).__name__})")], START_HINT)
        raise error

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
        return self._request("get", "/info", "info").json()

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
        return resp.json()["Id"]

    def init_container(self, cid: str, *, timeout: float) -> None:
        # An OCI runtime failure (e.g. the command does not exist) surfaces here.
        self._request("post", f"/containers/{cid}/init", "start", timeout=timeout, runtime=True)

    def attach(self, cid: str, *, stdin: StdinSource | None = None) -> _Attached | UpgradedAttach:
        if stdin is not None:
            return self._attach_stdin(cid, stdin)
        client = PodmanClient(base_url=self.url)
        try:
            resp = self._request("post", f"/containers/{cid}/attach", "attach", client=client, stream=True,
                                 params={"stream": True, "stdout": True, "stderr": True, "logs": True})
        except BaseException:
            client.close()
            raise
        return _Attached(client, resp)

    def _attach_stdin(self, cid: str, stdin: StdinSource) -> UpgradedAttach:
        return upgraded(self.url, attach_path(cid), "attach with stdin", self._redact, stdin=stdin)

    def start_container(self, cid: str, *, timeout: float) -> None:
        self._request("post", f"/containers/{cid}/start", "start", timeout=timeout, runtime=True)

    def inspect_container(self, cid: str, *, posture: bool = False) -> ContainerInfo:
        return _info_from(self._request("get", f"/containers/{cid}/json", "inspect").json(), posture)

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
        resp = self._request("get", f"/containers/{cid}/logs", "logs", params=params, stream=True)
        try:
            return list(read_frames(resp.raw.read))
        finally:
            resp.close()

    def exec_run(self, cid: str, command: list[str], *, env: dict[str, str] | None = None,
                 timeout: float | None = None) -> tuple[int, list[Frame]]:
        body: dict[str, Any] = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        if env:
            body["Env"] = [f"{k}={v}" for k, v in env.items()]
        exec_id = self._request("post", f"/containers/{cid}/exec", "exec create", data=json.dumps(body),
                                headers=_JSON).json()["Id"]
        resp = self._request("post", f"/exec/{exec_id}/start", "exec", timeout=timeout, stream=True,
                             data=json.dumps({"Detach": False, "Tty": False}), headers=_JSON)
        try:
            frames = list(read_frames(resp.raw.read))
        finally:
            resp.close()
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
