"""Library log records pass through every live redactor before any sink sees them."""

from __future__ import annotations

from loguru import logger

_installed = False


def _redact_record(record) -> None:
    from sandbox.redact.redactor import live_redactors

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
    """Patch loguru's core once so every record is redacted before formatting.

    A patcher (not a sink filter) because it runs before every sink, including
    sinks the application adds later.
    """
    global _installed
    if _installed:
        return
    _installed = True
    logger.configure(patcher=_redact_record)
