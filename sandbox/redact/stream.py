"""Live streams: ``feed`` returns what is safe to show now, ``close`` the rest.

Streams hold back only what could still turn into a secret: text after the last
newline, and any multi-line match (or partial match, via ``regex``'s partial
matching) that touches the end of what has arrived so far.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import regex

from sandbox.redact.engine import MAX_HOLD, MAX_MULTILINE_HOLD, Span

_ANSI = regex.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_ANSI_OPEN = regex.compile(r"\x1b(\[[0-9;?]*[ -/]*)?$")


def strip_ansi(text: str) -> tuple[str, list[int] | None]:
    """Text without colour escapes, and a map from its indexes to the original's."""
    if "\x1b" not in text:
        return text, None
    clean: list[str] = []
    index: list[int] = []
    pos = 0
    for m in _ANSI.finditer(text):
        for i in range(pos, m.start()):
            clean.append(text[i])
            index.append(i)
        pos = m.end()
    for i in range(pos, len(text)):
        clean.append(text[i])
        index.append(i)
    index.append(len(text))
    return "".join(clean), index


def apply(compiled: Any, text: str, cut: int,
          prepared: tuple[str, list[int] | None, list[Span]] | None = None) -> tuple[str, Counter[str]]:
    """Redact text[:cut] given the spans of the whole text (spans never cross cut)."""
    if prepared is None:
        clean, index = strip_ansi(text)
        spans = compiled.spans(clean)
    else:
        clean, index, spans = prepared
    counts: Counter[str] = Counter()
    pieces: list[str] = []
    pos = 0
    for s, e, rid in spans:
        os_, oe = (index[s], index[e]) if index is not None else (s, e)
        if os_ >= cut:
            break
        pieces.append(text[pos:os_])
        name = compiled.rules[rid].name
        pieces.append(f"[REDACTED:{name}]")
        counts[name] += 1
        pos = oe
    pieces.append(text[pos:cut])
    return "".join(pieces), counts


class RedactingStream:
    """One output stream of one redactor; counts what it masked, per rule."""

    def __init__(self, redactor: Any) -> None:
        self._r = redactor
        self._pending = ""
        self.counts: Counter[str] = Counter()

    def feed(self, chunk: str) -> str:
        if not self._r.enabled:
            return chunk
        self._pending += chunk
        return self._release(final=False)

    def close(self) -> str:
        if not self._r.enabled:
            return ""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        text = self._pending
        if not text:
            return ""
        compiled = self._r._compiled
        clean, index = strip_ansi(text)
        if final:
            cut = len(text)
        else:
            cut = self._safe_cut(compiled, text, clean, index)
            if cut <= 0:
                return ""
        spans = compiled.spans(clean)
        if not final:
            # A match crossing the cut waits whole, so it is masked whole.
            for s, e, _ in spans:
                os_, oe = (index[s], index[e]) if index is not None else (s, e)
                if os_ < cut < oe:
                    cut = os_
                    break
            if cut <= 0:
                return ""
        out, counts = apply(compiled, text, cut, (clean, index, spans))
        self._r._count(counts)
        self.counts.update(counts)
        self._pending = text[cut:]
        return out

    def _safe_cut(self, compiled: Any, text: str, clean: str, index: list[int] | None) -> int:
        n = len(text)
        cut = text.rfind("\n") + 1
        if n - cut > MAX_HOLD:
            # A line longer than the bound: release all but the bound's worth.
            cut = n - MAX_HOLD
        m = _ANSI_OPEN.search(text, max(0, n - 64))
        if m:
            cut = min(cut, m.start())
        if not compiled.multiline:
            return max(cut, 0)
        window = max(0, len(clean) - MAX_HOLD)
        wnl = clean.rfind("\n", 0, max(0, len(clean) - 256))
        window = max(window, wnl + 1)
        open_start = compiled.open_at_end(clean, window)
        if open_start is not None:
            # From the start of its line: one-line rules may match from there on.
            open_start = clean.rfind("\n", 0, open_start) + 1
            open_orig = index[open_start] if index is not None else open_start
            # Bounded: what has waited longer than the bound goes out as it is.
            cut = min(cut, max(open_orig, n - MAX_MULTILINE_HOLD))
        return max(cut, 0)
