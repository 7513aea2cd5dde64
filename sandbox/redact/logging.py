"""Library log records pass through every live redactor before any sink sees them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.redact.redactor import live_redactors

_installed: Callable[[Any], None] | None = None


def redact_record(record: Any) -> None:
    redactors = live_redactors()
    if not redactors:
        return
    for r in redactors:
        record["message"] = r.redact(record["message"])
    extra = record["extra"]
    for key, value in list(extra.items()):
        if isinstance(value, str):
            for r in redactors:
                value = r.redact(value)
            extra[key] = value
        elif isinstance(value, (list, tuple, dict)):
            text = repr(value)
            red = text
            for r in redactors:
                red = r.redact(red)
            if red != text:
                extra[key] = red
    exc = record.get("exception")
    if exc is not None and exc.value is not None:
        msg = str(exc.value)
        red = msg
        for r in redactors:
            red = r.redact(red)
        if red != msg:
            exc.value.args = (red,)


def install_log_redaction() -> None:
    """Patch loguru's core so every record is redacted before formatting.

    A patcher (not a sink filter) because it runs before every sink, including sinks
    the application adds later. An application's own patcher is kept: it runs first
    (it may add fields), then redaction. Installing again is a no-op unless the
    application replaced the patcher since, in which case the new one is wrapped.
    """
    global _installed
    current = getattr(logger._core, "patcher", None)  # loguru keeps the core patcher here
    if _installed is not None and current is _installed:
        return

    def patcher(record: Any, _app: Callable[[Any], None] | None = current) -> None:
        if _app is not None:
            _app(record)
        redact_record(record)

    _installed = patcher
    logger.configure(patcher=patcher)
