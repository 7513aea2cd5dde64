"""Undo what this process made, whatever way it ends.

Normal exit and exceptions go through context managers; SIGTERM is turned into
SystemExit so those same ``finally`` blocks run; ``atexit`` catches the rest.
SIGKILL cannot be caught: ``cleanroom prune`` finds what that leaves by labels.
"""

from __future__ import annotations

import atexit
import itertools
import signal
import threading
from collections.abc import Callable

from loguru import logger

_lock = threading.Lock()
_undo: dict[int, tuple[str, Callable[[], None]]] = {}
_ids = itertools.count(1)
_installed = False


def register(what: str, undo: Callable[[], None]) -> int:
    """Remember how to undo something; returns a token for ``done``."""
    _install_handlers()
    token = next(_ids)
    with _lock:
        _undo[token] = (what, undo)
    return token


def done(token: int) -> None:
    """The thing was undone (or handed over) normally."""
    with _lock:
        _undo.pop(token, None)


def run_all() -> list[str]:
    """Undo everything still registered, newest first. Returns what was undone."""
    with _lock:
        items = sorted(_undo.items(), reverse=True)
        _undo.clear()
    undone = []
    for _, (what, undo) in items:
        try:
            undo()
            undone.append(what)
        except Exception as exc:  # keep going: one failure must not strand the rest
            logger.warning("cleanup step failed", what=what, error=str(exc))
    return undone


def _on_sigterm(signum, frame):  # noqa: ARG001
    # SystemExit unwinds the main thread through every context manager and finally.
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(run_all)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:
            pass
