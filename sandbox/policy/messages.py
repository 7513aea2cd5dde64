"""msgspec's validation errors in a user's words: the key path, what was wrong, and
what is allowed (bounds, literal choices, the keys of the table)."""

from __future__ import annotations

import difflib
import re

import msgspec

from sandbox.policy.model import LEVELS, SUBTABLES, PolicyConfig, field_names

_PATH_RE = re.compile(r"at `\$(.*)`$")


def translate(exc: msgspec.ValidationError) -> tuple[list[str | int], str, str | None]:
    """msgspec's "... - at `$.a.b[2]`" → (our key path, a message in words, what is allowed)."""
    text = str(exc)
    m = _PATH_RE.search(text)
    path: list[str | int] = []
    if m:
        for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", m.group(1)):
            path.append(part[0] if part[0] else int(part[1]))
        text = text[: m.start()].rstrip(" -")
    if text.startswith("Object contains unknown field"):
        name = text.split("`")[1]
        struct = _struct_at([p for p in path if isinstance(p, str)])
        return path + [name], "unknown key" + did_you_mean(name, field_names(struct)), allowed_keys(struct)
    return path, _plain(text), _allowed_for(text, path)


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plain(message: str) -> str:
    """msgspec's "Expected `int` >= 1" → words; the allowed part carries the bounds."""
    if re.match(r"Expected `[^`]+`\s*(>=|<=|>|<)", message):
        return "out of range"
    m = re.match(r"Expected `[^`]+`, got `([^`]+)`", message)
    if m:
        return f"wrong type (got {_TYPE_WORDS.get(m.group(1), m.group(1))})"
    m = re.match(r"Invalid enum value (.+)$", message)
    if m:
        return f"unknown value {m.group(1)}"
    return message


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "array": "a list", "object": "a table", "null": "nothing"}
_LITERALS = {
    "security_level": ", ".join(LEVELS),
    "audit_level": ", ".join(LEVELS),
    "network_mode": "none, egress, allowlist",
}


def _allowed_for(message: str, path: list[str | int]) -> str | None:
    names = [p for p in path if isinstance(p, str)]
    if "Invalid enum value" in message and names and names[-1] in _LITERALS:
        return _LITERALS[names[-1]]
    m = re.match(r"Expected `([^`]+)`(?:\s*(>=|<=|>|<)\s*([-\d.]+))?", message)
    if not m:
        return None
    kinds = [_TYPE_WORDS.get(k.strip(), k.strip()) for k in m.group(1).split("|")]
    allowed = " or ".join(k for k in kinds if k != "nothing")
    if m.group(2):
        allowed += f" {m.group(2)} {m.group(3)}"
    return allowed


def _struct_at(path: list[str]) -> type[msgspec.Struct]:
    key = ".".join(path)
    return SUBTABLES.get(key, PolicyConfig)


def allowed_keys(struct: type[msgspec.Struct]) -> str:
    return ", ".join(field_names(struct))
