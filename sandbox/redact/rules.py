"""What a redaction rule is. The built-in rules live in ``sandbox/redact/pack/*.toml``
(loaded and validated by ``sandbox.redact.pack``); policy rules and registered secrets
are the same kind of object.

Each rule masks its named group ``s`` when it has one (the secret part of
``password=...``), else the whole match. Patterns avoid look-arounds so that the fast
multi-pattern engine (hyperscan) can take them.
"""

from __future__ import annotations

import msgspec


class Rule(msgspec.Struct, frozen=True):
    name: str
    pattern: str
    # Rules whose matches may span lines get a larger stream look-behind, from the last
    # occurrence of one of their openers. Every other rule matches within one line.
    multiline: bool = False
    openers: tuple[str, ...] = ()
    # For multi-line rules: the pattern whose partial match at the end of a stream
    # means "may still grow" (default: the rule's pattern). A rule that also masks a
    # truncated form holds while its complete form is unfinished.
    hold: str | None = None
    family: str = "custom"
    # Literal strings (case-insensitive) every match contains: documentation and a cheap
    # pre-check for rules the prefilter cannot take.
    keywords: tuple[str, ...] = ()
    # A named value gate (sandbox.redact.gates.GATES) the masked text must pass.
    gate: str | None = None
    # Overlapping matches are named after the rule with the lowest priority number:
    # provider formats (0) before context rules (1) before generic keyword rules (2).
    priority: int = 1
