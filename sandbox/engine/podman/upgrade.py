"""Attach with stdin: libpod answers ``101 UPGRADED`` and the connection becomes a raw
two-way stream (our bytes go to the command's stdin, its output comes back as
frames). requests cannot hand over an upgraded socket, so this speaks the few lines
of HTTP/1.1 itself on the unix socket. A writer thread feeds the data and then
half-closes the connection, which Podman turns into end of file on the command's
stdin. Used only by ``sandbox.engine.podman.libpod`` (which owns error translation).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from loguru import logger

from sandbox.engine.podman.frames import Frame, read_frames
from sandbox.errors import ContainerError

_API_PREFIX = "/v4.0.0/libpod"
_CHUNK = 64 * 1024
_HEADER_LIMIT = 64 * 1024


class UpgradeRefused(Exception):
    """The service answered the upgrade with something other than 101 (status, first line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def chunks(data: bytes | BinaryIO) -> Iterator[bytes]:
    """Stdin (bytes, or a binary file read to its end) in pieces of at most 64 KiB."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for i in range(0, len(view), _CHUNK):
            yield bytes(view[i:i + _CHUNK])
        return
    while True:
        chunk = data.read(_CHUNK)
        if not chunk:
            return
        yield chunk


class UpgradedAttach:
    """One upgraded attach connection: iterate for frames; close to drop it."""

    def __init__(self, sock: socket.socket, stdin: bytes | BinaryIO | None) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()
        if stdin is not None:
            self.feed(stdin)

    def feed(self, stdin: bytes | BinaryIO, *, prefix: bytes = b"") -> None:
        """Send ``prefix`` now, then ``stdin`` from a thread, then end of file (once only)."""
        if prefix:
            try:
                self._sock.sendall(prefix)
            except OSError as exc:  # it ended meanwhile (killed, or the service went)
                raise ContainerError(f"the sandbox ended before its command was handed over "
                                     f"({type(exc).__name__}); nothing ran") from None
        if isinstance(stdin, bytes | bytearray) and not stdin:
            self._shut_write()  # nothing more to send: no thread needed
            return
        threading.Thread(target=self._feed, args=(stdin,), name="attach-stdin", daemon=True).start()

    def _feed(self, stdin: bytes | BinaryIO) -> None:
        try:
            for chunk in chunks(stdin):
                self._sock.sendall(chunk)
        except OSError as exc:  # the command exited without reading it all: not an error of ours
            logger.debug("stdin feed ended early", error=type(exc).__name__)
        finally:
            self._shut_write()

    def _shut_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        """Write to the command's stdin now (a channel opened without ``stdin``); OSError when gone."""
        with self._send_lock:
            self._sock.sendall(data)

    def waiting(self) -> bool:
        """True while the other end is open and has sent nothing: a warm pool's member
        still waiting in its helper (which writes nothing until it has its command).
        Output already there, or the end of the stream, means it is not."""
        try:
            self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def __iter__(self) -> Iterator[Frame]:
        return read_frames(self._reader.read)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)  # one byte at a time: what follows the head is the stream's
        if not byte or len(head) > _HEADER_LIMIT:
            break
        head += byte
    return head


def attach_path(cid: str) -> str:
    # No log replay (logs=false): see LibpodAPI.attach.
    return f"/containers/{quote(cid)}/attach?stream=true&stdin=true&stdout=true&stderr=true&logs=false"


def channel_path(cid: str) -> str:
    """Attach for a channel kept open: detach keys explicitly off (the channel carries
    binary frames: no byte pair in them may ever read as a detach request), no replayed logs."""
    return f"/containers/{quote(cid)}/attach?stream=true&stdin=true&stdout=true&stderr=true&detachKeys="


def open_upgraded(socket_path: str, path: str, *, body: bytes = b"", stdin: bytes | BinaryIO | None = None,
                  timeout: float) -> UpgradedAttach:
    """POST ``path`` (attach, or exec start with its JSON body) on its own connection and
    return the raw stream; ``stdin``, when given, is fed and then closed (otherwise
    it stays open until ``feed``)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        kind = "Content-Type: application/json\r\n" if body else ""
        sock.sendall(f"POST {_API_PREFIX}{path} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                     f"{kind}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        head = _read_head(sock)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 101:
            reason = sock.recv(300).decode("utf-8", "replace") if head.endswith(b"\r\n\r\n") else ""
            raise UpgradeRefused(status, f"{status_line} {reason}".strip())
        sock.settimeout(None)  # the stream lasts as long as the command
    except BaseException:
        sock.close()
        raise
    return UpgradedAttach(sock, stdin)
