"""The output pipeline: bytes → UTF-8 text → redactor → consumer and a bounded buffer.

Sandboxes (live streams), services (logs) and exec all pass their output through
here, so nothing reaches a result, a callback or an error before redaction.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loguru import logger

from sandbox.engine.podman.frames import STDERR, Frame, MalformedStream
from sandbox.errors import CleanroomError

if TYPE_CHECKING:
    from sandbox.redact.redactor import Redactor

# Captured output per stream kept in memory; the live stream still sees everything.
MAX_CAPTURE_BYTES = 16 * 1024 * 1024
TAIL_LINES = 20


class Capture:
    """One output stream, redacted as it arrives (secrets split across chunks included)."""

    def __init__(self, redactor: Redactor | None, consumer: Callable[[str], None] | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stream = redactor.stream() if redactor is not None else None
        self._consumer = consumer
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False
        self._closed = False

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
        """Release what was held back; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        text = self._decoder.decode(b"", final=True)
        if self._stream is not None:
            text = self._stream.feed(text) + self._stream.close()
        self._emit(text)

    def text(self) -> str:
        return "".join(self._parts)

    def counts(self) -> dict[str, int]:
        return dict(self._stream.counts) if self._stream is not None else {}


class Output:
    """stdout and stderr of one container, demultiplexed from its frames."""

    def __init__(self, redactor: Redactor | None, on_stdout: Callable[[str], None] | None = None,
                 on_stderr: Callable[[str], None] | None = None) -> None:
        self.stdout = Capture(redactor, on_stdout)
        self.stderr = Capture(redactor, on_stderr)
        self.lost: str | None = None  # why the stream broke off before the container ended
        self.malformed = False  # it broke off on a frame that was not one (not the service's death)

    def broken(self) -> str:
        """Why the result is incomplete, for the error the run raises."""
        why = ("Podman sent a malformed output stream, so the output cannot be trusted" if self.malformed
               else "the Podman service stopped while the sandbox ran, so its output and exit are incomplete")
        return f"the output stream broke off ({self.lost}): {why}; it was removed"

    def feed(self, frames: Iterable[Frame]) -> None:
        for stream, payload in frames:
            (self.stderr if stream == STDERR else self.stdout).feed(payload)

    def close(self) -> None:
        self.stdout.close()
        self.stderr.close()

    @property
    def truncated(self) -> bool:
        return self.stdout.truncated or self.stderr.truncated

    def counts(self) -> dict[str, int]:
        total: Counter[str] = Counter(self.stdout.counts())
        total.update(self.stderr.counts())
        return dict(total)

    def tail(self) -> str:
        return tail(self.stdout.text() + self.stderr.text())


def redact_text(redactor: Redactor | None, text: str) -> str:
    """One whole text through the redactor (arguments, messages, names)."""
    return redactor.redact(text) if redactor is not None else text


_MARKER = re.compile(r"\[REDACTED:[^\]\s]*\]")


def redact_again(redactor: Redactor | None, text: str) -> str:
    """Redact text that may already hold redaction markers, leaving the markers as
    they are (a marker's own words must not be read as a new secret)."""
    parts: list[str] = []
    pos = 0
    for m in _MARKER.finditer(text):
        parts += [redact_text(redactor, text[pos:m.start()]), m.group()]
        pos = m.end()
    parts.append(redact_text(redactor, text[pos:]))
    return "".join(parts)


@contextmanager
def errors_redacted(redactor: Redactor | None) -> Iterator[None]:
    """Whatever raised it (engine, confiner, stage), no CleanroomError leaves with a secret:
    its arguments are redacted in place, and one whose ``__str__`` ignores them is wrapped."""
    try:
        yield
    except CleanroomError as exc:
        exc.args = tuple(redact_again(redactor, a) if isinstance(a, str) else a for a in exc.args)
        text = str(exc)
        if redact_again(redactor, text) != text:
            raise CleanroomError(redact_again(redactor, text)) from None
        raise


def combined(redactor: Redactor | None, frames: Iterable[Frame]) -> str:
    """Every frame, both streams in arrival order, as one redacted text (logs, exec)."""
    capture = Capture(redactor)
    for _, payload in frames:
        capture.feed(payload)
    capture.close()
    return capture.text()


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def pump(output: Output, frames: Iterable[Frame], name: str, sandbox: str) -> threading.Thread:
    """A daemon thread feeding ``frames`` into ``output`` until they end."""

    def run() -> None:
        try:
            output.feed(frames)
        except MalformedStream as exc:
            output.lost = str(exc)
            output.malformed = True
            logger.warning("output stream malformed", sandbox=sandbox, error=str(exc))
        except Exception as exc:  # the service went away mid-stream: the result says so
            output.lost = type(exc).__name__
            logger.warning("output stream ended early", sandbox=sandbox, error=type(exc).__name__)

    reader = threading.Thread(target=run, name=name, daemon=True)
    reader.start()
    return reader
