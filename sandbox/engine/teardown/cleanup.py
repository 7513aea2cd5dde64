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
from types import FrameType
from typing import NoReturn

from loguru import logger

_lock = threading.Lock()
_undo: dict[int, tuple[str, Callable[[], None], str | None]] = {}
_ids = itertools.count(1)
_installed = False


def register(what: str, undo: Callable[[], None], owner: str | None = None) -> int:
    """Remember how to undo something (made by ``owner``); returns a token for ``done``."""
    _install_handlers()
    token = next(_ids)
    with _lock:
        _undo[token] = (what, undo, owner)
    return token


def done(token: int) -> None:
    """The thing was undone (or handed over) normally."""
    with _lock:
        _undo.pop(token, None)


def pending(owner: str | None = None) -> list[str]:
    """What is registered and not undone yet (for one owner, or all), newest first."""
    with _lock:
        return [v[0] for t, v in sorted(_undo.items(), reverse=True) if owner is None or v[2] == owner]


def run_all(owner: str | None = None) -> list[str]:
    """Undo what is still registered, newest first: everything, or one owner's only
    (an environment closing must not undo another environment's work). Each step
    leaves the registry as it starts, so ``pending`` names what has not begun."""
    with _lock:
        tokens = sorted((t for t, v in _undo.items() if owner is None or v[2] == owner), reverse=True)
    undone = []
    for token in tokens:
        with _lock:
            item = _undo.pop(token, None)
        if item is None:
            continue  # undone meanwhile by its owner
        what, undo, _owner = item
        try:
            undo()
            undone.append(what)
        except Exception as exc:  # keep going: one failure must not strand the rest
            logger.warning("cleanup step failed", what=what, error=str(exc))
    return undone


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:  # noqa: ARG001
    # SystemExit unwinds the main thread through every context manager and finally.
    raise SystemExit(128 + signum)


def _install_handlers() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(run_all)  # no owner: everything left at exit
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:
            pass
