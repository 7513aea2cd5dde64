"""The libpod calls a session makes: the two-way attach its agent speaks over and the
archive endpoints (tar in, tar out). Mixed into ``LibpodAPI``, whose ``_request`` turns
every HTTP failure into a redacted ``CleanroomError``; ``upgraded`` does the same for
the raw upgraded connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from requests import Response

from sandbox.engine.podman.api import StdinSource
from sandbox.engine.podman.connection import START_HINT
from sandbox.engine.podman.frames import Frame
from sandbox.engine.podman.upgrade import UpgradedAttach, UpgradeRefused, channel_path, open_upgraded
from sandbox.errors import CleanroomError, ContainerError, ContainerNotFound, EngineUnavailable, TimeoutExceeded

_JSON = {"content-type": "application/json"}
_UPGRADE_TIMEOUT = 60.0
_CHUNK = 64 * 1024


def upgraded(url: str, path: str, what: str, redact: Callable[[str], str], *, body: bytes = b"",
             stdin: StdinSource | None = None) -> UpgradedAttach:
    """An upgraded connection to ``path``; any failure as a CleanroomError, redacted."""
    if not url.startswith("unix://"):
        raise ContainerError(f"{what} needs the engine on a unix socket, not {url}")
    try:
        return open_upgraded(url[len("unix://"):], path, body=body, stdin=stdin, timeout=_UPGRADE_TIMEOUT)
    except UpgradeRefused as exc:
        error: CleanroomError = (ContainerNotFound if exc.status == 404 else ContainerError)(
            f"{what} failed: {redact(str(exc))}")
    except TimeoutError:
        error = TimeoutExceeded(what, _UPGRADE_TIMEOUT)
    except OSError as exc:
        error = EngineUnavailable([(url, f"{what}: {type(exc).__name__}")], START_HINT)
    raise error


class Channel:
    """An upgraded attach kept open both ways; a failed write is a ContainerError."""

    def __init__(self, conn: UpgradedAttach) -> None:
        self._conn = conn

    def send(self, data: bytes) -> None:
        try:
            self._conn.send(data)
        except OSError as exc:
            raise ContainerError(f"writing to the sandbox's stdin failed ({type(exc).__name__}): "
                                 "the container or the Podman service is gone") from None

    def __iter__(self) -> Iterator[Frame]:
        return iter(self._conn)

    def close(self) -> None:
        self._conn.close()


class SessionCalls:
    url: str
    _redact: Callable[[str], str]
    _request: Callable[..., Response]

    def attach_channel(self, cid: str) -> Channel:
        return Channel(upgraded(self.url, channel_path(cid), "attach", self._redact))

    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        self._request("put", f"/containers/{cid}/archive", "copy into the sandbox", params={"path": path},
                      data=data, headers={"content-type": "application/x-tar"})

    def get_archive(self, cid: str, path: str, *, max_bytes: int) -> bytes:
        """The tar of ``path``; ContainerError once it grows past ``max_bytes``."""
        resp = self._request("get", f"/containers/{cid}/archive", "copy out of the sandbox", params={"path": path},
                             stream=True)
        parts, size = [], 0
        try:
            for chunk in resp.iter_content(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ContainerError(f"copying {path} out of the sandbox stopped at {max_bytes} bytes "
                                         "(cleanroom.security_policy.max_copy_out_bytes)")
                parts.append(chunk)
        finally:
            resp.close()
        return b"".join(parts)
