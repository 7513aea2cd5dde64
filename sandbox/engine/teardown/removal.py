"""Removing a finished sandbox off the caller's path.

Once a run's output, exit code and final usage are read, nothing the caller gets
depends on the container any more, so its removal (Podman's rm, then the confiners'
release) runs on a small thread pool: a run returns ~20 ms sooner. A failed or
timed-out run is still removed before its error leaves (the runner does that
itself). The removal stays registered with ``cleanup`` until done, so SIGTERM and
the environment's close still cover it; ``drain`` waits for those under way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from loguru import logger

from sandbox.engine.podman.api import AttachStream
from sandbox.engine.types import AuditFn, SandboxHandle, StageObserver
from sandbox.errors import CleanroomError

_WORKERS = 4


class Made:
    """A container a runner created: its handle and its cleanup registration."""

    def __init__(self, handle: SandboxHandle, token: int) -> None:
        self.handle, self.token = handle, token


class BackgroundRemoval:
    """Mixed into ``SandboxRunner``: ``dispose_later`` and ``drain``."""

    audit: AuditFn
    observer: StageObserver
    _removals: ThreadPoolExecutor | None = None

    def dispose(self, made: Made, *, read_usage: bool = False, observed: bool = True) -> None:
        raise NotImplementedError  # the runner's

    def settle(self, made: Made, stream: AttachStream | None, finished: bool, exit_code: int | None) -> None:
        """A finished run's container goes in the background; a failed one now, before
        its error leaves."""
        if finished:
            # For the run's phases and time series its life ends here; the removal is
            # the background's (the timeline's "remove" phase is the hand-over).
            for stage in ("remove", "done"):
                self.observer.stage(made.handle.name, stage)
            self.dispose_later(made, stream, exit_code)
            return
        try:
            self.dispose(made)
        finally:
            if stream is not None:
                stream.close()

    def dispose_later(self, made: Made, stream: AttachStream | None = None, exit_code: int | None = None) -> None:
        if self._removals is None:
            self._removals = ThreadPoolExecutor(_WORKERS, thread_name_prefix="cleanroom-remove")
        self._removals.submit(self._remove_now, made, stream, exit_code)

    def _remove_now(self, made: Made, stream: AttachStream | None, exit_code: int | None) -> None:
        name = made.handle.name
        try:
            self.dispose(made, observed=False)
            self.audit("sandbox.removed", "Minimal", sandbox=name, exit_code=exit_code)
        except CleanroomError as exc:  # still registered with cleanup: close or prune retries
            logger.warning("sandbox removal failed", sandbox=name, error=str(exc))
        except Exception as exc:  # a pool thread must not die silently
            logger.exception("sandbox removal failed", sandbox=name, error=str(exc))
        finally:
            if stream is not None:
                stream.close()

    def drain(self) -> None:
        """Wait for every removal under way (the environment's close calls this first)."""
        removals, self._removals = self._removals, None
        if removals is not None:
            removals.shutdown(wait=True)
