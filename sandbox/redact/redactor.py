"""The redactor: every rule, one pass, on whole texts and on live streams.

Rules come in layers: the built-in pack (compiled once per process and shared), the
policy's own patterns, and registered secrets (recompiled when one is added, small).
A text is scanned by each layer; overlapping matches are merged.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
import weakref
from collections import Counter
from typing import Any

import regex

from sandbox.errors import PolicyError, SecretRefused
from sandbox.redact.dialect import DIALECT, PatternError, compile_pattern
from sandbox.redact.engine import Compiled, Span, compiled_for, resolve
from sandbox.redact.pack import BUILTIN_RULES, policy_rules
from sandbox.redact.rules import Rule
from sandbox.redact.stream import RedactingStream, apply

MIN_SECRET_LENGTH = 8

_live: weakref.WeakSet[Redactor] = weakref.WeakSet()


def live_redactors() -> list[Redactor]:
    return list(_live)


class Layers:
    """Several compiled rule sets scanned as one (rule indexes run across them)."""

    def __init__(self, layers: list[Compiled]) -> None:
        self.layers = [c for c in layers if c.rules]
        self.rules: list[Rule] = [r for c in self.layers for r in c.rules]
        self.multiline = any(c.multiline for c in self.layers)

    def spans(self, text: str) -> list[Span]:
        found: list[Span] = []
        offset = 0
        for c in self.layers:
            found.extend((s, e, rid + offset) for s, e, rid in c.spans(text))
            offset += len(c.rules)
        return resolve(found, self.rules)

    def open_at_end(self, text: str, window_start: int) -> int | None:
        starts = [p for c in self.layers if c.open_rules for p in [c.open_at_end(text, window_start)] if p is not None]
        return min(starts) if starts else None


class Redactor:
    """All rules of one environment; thread-safe; counts what it masked, per rule."""

    def __init__(self, patterns: list[str] | tuple[str, ...] = (), *, builtin: bool = True,
                 enabled: bool = True, disabled: list[str] | tuple[str, ...] = (),
                 rules: list[Any] | tuple[Any, ...] = ()) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        base: tuple[Rule, ...] = BUILTIN_RULES if builtin else ()
        if disabled:
            off = set(disabled)
            base = tuple(r for r in base if r.name not in off)
        self._builtin = compiled_for(base)
        extra: list[Rule] = []
        for i, pattern in enumerate(patterns):
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                raise PolicyError(f"invalid regular expression: {exc}",
                                  key=f"cleanroom.security_policy.redaction_patterns[{i}]",
                                  allowed=DIALECT) from None
            extra.append(Rule(f"policy_{i}", pattern))
        extra.extend(policy_rules(rules, known=[r.name for r in BUILTIN_RULES]))
        self._policy = compiled_for(tuple(extra))
        self._secrets: list[Rule] = []
        self._compiled = Layers([self._builtin, self._policy])
        _live.add(self)

    @classmethod
    def from_policy(cls, security_policy: Any) -> Redactor:
        return cls(
            list(getattr(security_policy, "redaction_patterns", []) or []),
            builtin=getattr(security_policy, "enable_builtin_redaction_rules", True),
            enabled=getattr(security_policy, "enable_data_redaction", True),
            disabled=list(getattr(security_policy, "redaction_rules_disabled", []) or []),
            rules=list(getattr(security_policy, "redaction_rules", []) or []),
        )

    # -- secrets ----------------------------------------------------------------
    def add_secret(self, value: str, name: str = "secret") -> None:
        """Mask this exact value and its base64, URL-encoded and JSON-escaped forms.

        A value shorter than MIN_SECRET_LENGTH is refused: masking ``abc`` everywhere
        would mangle output, and showing it in clear would be a leak.
        """
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            length = len(value) if isinstance(value, str) else 0
            raise SecretRefused(
                f"secret {name!r} is {length} characters long; cleanroom masks only values of at least "
                f"{MIN_SECRET_LENGTH} characters (a shorter one would mangle output when masked, and leak when not). "
                "Fix: use a longer, random value for it.", name=name)
        forms = {value}
        raw = value.encode()
        for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms.add(enc.decode())
            forms.add(enc.decode().rstrip("="))
        forms.add(urllib.parse.quote(value, safe=""))
        forms.add(urllib.parse.quote_plus(value))
        forms.add(json.dumps(value)[1:-1])
        # Inside a longer base64 blob the value sits at one of three byte alignments;
        # the groups made only of its own bytes are the same whatever surrounds it.
        for shift in (0, 1, 2):
            enc = base64.b64encode(b"\0" * shift + raw).decode()
            core = enc[4 if shift else 0:(shift + len(raw)) // 3 * 4]
            if len(core) >= 8:
                forms.add(core)
        rules = [Rule(f"secret:{name}", regex.escape(f), priority=0)
                 for f in sorted(forms, key=len, reverse=True) if f]
        with self._lock:
            self._secrets.extend(rules)
            self._compiled = Layers([self._builtin, self._policy, Compiled(self._secrets)])

    # -- one shot ---------------------------------------------------------------
    def redact(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        out, counts = apply(self._compiled, text, len(text))
        self._count(counts)
        return out

    def redact_bytes(self, data: bytes) -> bytes:
        return self.redact(data.decode("utf-8", errors="replace")).encode("utf-8")

    def stream(self) -> RedactingStream:
        return RedactingStream(self)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _count(self, counts: Counter[str]) -> None:
        if counts:
            with self._lock:
                self._counts.update(counts)

