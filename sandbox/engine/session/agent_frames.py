"""The framing a session's agent (``cleanroom-helper -A``) speaks, both ways.

The agent reads requests on its stdin and answers on its stdout; both travel over the
container's attach connection, so Podman's own frames carry our bytes in pieces of any
size, and ``Decoder`` puts them back together. Every frame is a 12-byte head (kind,
three zero bytes, the command's id and the payload's length, both 32-bit big-endian)
and the payload (at most 1 MiB). The C side's comment in ``helper/cleanroom_helper.c``
describes each kind; the two must change together.
"""

from __future__ import annotations

import struct

import msgspec

from sandbox.errors import ContainerError

HEAD = struct.Struct(">B3sII")
_PAD = b"\0\0\0"
MAX_PAYLOAD = 1 << 20

# engine → agent
EXEC, STDIN, STDIN_END, KILL = b"E", b"I", b"C", b"K"
# agent → engine
READY, STDOUT, STDERR, ACK, EXIT, FAILED = b"H", b"O", b"R", b"A", b"X", b"F"
KINDS = frozenset(EXEC + STDIN + STDIN_END + KILL + READY + STDOUT + STDERR + ACK + EXIT + FAILED)


class Reply(msgspec.Struct, frozen=True):
    kind: bytes
    exec_id: int
    payload: bytes

    def number(self) -> int:
        """The 32-bit count or status that ACK, EXIT and FAILED start with."""
        return int.from_bytes(self.payload[:4], "big")


def encode(kind: bytes, exec_id: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ContainerError(f"a request to the session's agent is {len(payload)} bytes, more than its 1 MiB limit "
                             "(a very large command line or environment)")
    return HEAD.pack(kind[0], _PAD, exec_id, len(payload)) + payload


def exec_request(exec_id: int, argv: list[str], *, env: dict[str, str] | None = None, workdir: str | None = None,
                 user: str | None = None, keep_caps: bool = False, reads_stdin: bool = False) -> bytes:
    """An EXEC frame: flags, user, working directory, the argument count, the arguments,
    then NAME=VALUE entries, each NUL-terminated."""
    if not argv:
        raise ContainerError("no command to run in the session")
    flags = ("k" if keep_caps else "") + ("i" if reads_stdin else "")
    fields = [flags, user or "", workdir or "", str(len(argv)), *argv,
              *(f"{k}={v}" for k, v in (env or {}).items())]
    if any("\0" in f for f in fields):
        raise ContainerError("a command argument, environment value, user or working directory contains a NUL byte")
    return encode(EXEC, exec_id, b"".join(f.encode() + b"\0" for f in fields))


def reply(kind: bytes, exec_id: int, payload: bytes = b"", number: int | None = None) -> bytes:
    """A frame as the agent sends it (the unit fake answers with these)."""
    head = number.to_bytes(4, "big") if number is not None else b""
    return encode(kind, exec_id, head + payload)


class Decoder:
    """Bytes as they arrive → whole frames; what is left waits for the next piece.

    A head that is not one (unknown kind, padding not zero, a payload over the limit)
    is a ContainerError at once: bytes that did not come from the agent in the stream
    must end the session, never leave it waiting for a frame that will not come."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        out, at = [], 0
        while len(self._buf) - at >= HEAD.size:
            kind, pad, exec_id, size = HEAD.unpack_from(self._buf, at)
            if kind not in KINDS or pad != _PAD or size > MAX_PAYLOAD:
                shown = bytes(self._buf[at:at + 4])
                raise ContainerError(f"the session's agent sent a malformed frame head ({shown!r}, {size} bytes): "
                                     "the stream is corrupt")
            if len(self._buf) - at < HEAD.size + size:
                break
            start = at + HEAD.size
            out.append(Reply(bytes([kind]), exec_id, bytes(self._buf[start:start + size])))
            at = start + size
        del self._buf[:at]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
