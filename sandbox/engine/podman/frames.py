"""Podman's multiplexed stream format, parsed in one place.

Each frame is an 8-byte header (stream id, three zero bytes, payload size as
big-endian u32) followed by the payload. attach, logs and exec all use it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

STDIN, STDOUT, STDERR = 0, 1, 2
Frame = tuple[int, bytes]


class MalformedStream(ValueError):
    """A frame header that is not one: the stream cannot be trusted past it (never guessed at,
    so no output is silently cut or doubled)."""


def _read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    # A socket read may return less than asked; a short result means end of stream.
    parts = []
    want = size
    while want:
        chunk = read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)


def read_frames(read: Callable[[int], bytes]) -> Iterator[Frame]:
    """(stream id, payload) as they arrive from ``read(n)``; ends at end of stream."""
    while True:
        header = _read_exact(read, 8)
        if len(header) < 8:
            return
        if header[0] > STDERR or header[1:4] != b"\0\0\0":
            # The bytes themselves are not quoted: they may be raw, unredacted output.
            raise MalformedStream("a malformed frame header in the output stream (not a stream id 0-2 with "
                                  "zero padding)")
        size = int.from_bytes(header[4:8], "big")
        if not size:
            continue
        payload = _read_exact(read, size)
        if payload:
            yield header[0], payload
        if len(payload) < size:
            return


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame of a complete buffer."""
    return list(read_frames(io.BytesIO(data).read))


def encode_frame(stream: int, payload: bytes) -> bytes:
    """One frame as Podman sends it (fakes and tests build streams with this)."""
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload
