"""The one regular-expression dialect of redaction rules: the ``regex`` module's.

The policy loader validates user patterns with this function and the redactor compiles
them with it, so a pattern the loader accepts (``\\p{L}``, possessive quantifiers) is
exactly a pattern the redactor can run.
"""

from __future__ import annotations

import functools

import regex

DIALECT = "Python regular expressions as the `regex` module reads them (\\p{L}, (?i:...), no look-behind needed)"


class PatternError(ValueError):
    """A redaction pattern does not compile; the message says why."""


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile ``pattern`` as every redaction rule is compiled (cached: packs are shared)."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternError("a pattern must be a non-empty string")
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise PatternError(str(exc)) from None
    if compiled.fullmatch("") is not None:
        # A pattern that matches nothing at all would "mask" between every two characters.
        raise PatternError("the pattern matches the empty string")
    return compiled
