"""Server settings passed to services the way the real servers take them: PostgreSQL's
``-c name=value`` and Redis's configuration directives. Names are checked for their
syntax here (the server itself refuses names it does not know, at start, with its own
message in the service's last output); values are one line each."""

from __future__ import annotations

import re

from sandbox.errors import CleanroomError

_PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_PG_EXTENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_REDIS_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Directives the service sets itself (where it listens, its password) or that would read
# other files into the configuration.
REDIS_RESERVED = frozenset({"bind", "port", "requirepass", "include", "protected-mode"})

Value = str | int | float | bool


def _value(name: str, value: Value, true: str, false: str) -> str:
    text = (true if value else false) if isinstance(value, bool) else str(value)
    if "\n" in text or "\r" in text or "\0" in text:
        raise CleanroomError(f"setting {name!r}: a value must be one line")
    return text


def postgres_args(settings: dict[str, Value] | None) -> list[str]:
    """``-c name=value`` pairs for the postgres server (after cleanroom's own, so they win)."""
    out: list[str] = []
    for name, value in (settings or {}).items():
        if not _PG_NAME.match(name):
            raise CleanroomError(f"PostgreSQL setting {name!r} is not a valid parameter name "
                                 "(letters, digits, underscores; one dot for a custom class)")
        out += ["-c", f"{name}={_value(name, value, 'on', 'off')}"]
    return out


def postgres_extensions(names: list[str] | None) -> list[str]:
    for name in names or []:
        if not _PG_EXTENSION.match(name):
            raise CleanroomError(f"PostgreSQL extension {name!r} is not a valid extension name")
    return list(names or [])


def redis_conf_quote(text: str) -> str:
    """A value as redis.conf reads it: double-quoted, backslashes and quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_directives(config: dict[str, Value] | None) -> list[tuple[str, str]]:
    """(directive, value) pairs, names and values checked."""
    out = []
    for name, value in (config or {}).items():
        if not _REDIS_NAME.match(name):
            raise CleanroomError(f"Redis directive {name!r} is not a valid name (lowercase letters, digits, dashes)")
        if name in REDIS_RESERVED:
            raise CleanroomError(f"Redis directive {name!r} is set by cleanroom itself "
                                 "(the port, bind address and password come from RedisContainer's arguments)")
        out.append((name, _value(name, value, "yes", "no")))
    return out
