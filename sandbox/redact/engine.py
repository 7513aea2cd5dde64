"""A compiled rule set: where its rules match in a text, and what may still be open.

Speed comes from a multi-pattern prefilter (hyperscan when installed): a text with no
candidate goes out untouched without any per-rule regex work; candidates are
confirmed by the exact ``regex`` pattern on just the lines around them, then by the
rule's value gate. Rules the prefilter cannot compile are run exactly on every text
(after a keyword pre-check), so nothing is ever silently not matched.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from sandbox.redact.dialect import compile_pattern
from sandbox.redact.gates import GATES
from sandbox.redact.hsdb import build, hyperscan
from sandbox.redact.rules import Rule

# Stream look-behind bounds: one line may be held up to MAX_HOLD; a multi-line
# construct (a PEM block) up to MAX_MULTILINE_HOLD.
MAX_HOLD = 4096
MAX_MULTILINE_HOLD = 16384

Span = tuple[int, int, int]  # start, end, rule index


class _OnFirstUse:
    """Each rule's exact pattern, compiled when a text first needs it: a rule's regex runs
    only where the prefilter hit it (or for the few rules outside the prefilter), so a
    process that redacts a little never compiles most of the pack (~0.2 s for all of it).
    Patterns were validated when their pack or policy was loaded; a race compiles one
    twice, harmlessly."""

    def __init__(self, patterns: list[str]) -> None:
        self._patterns = patterns
        self._compiled: list[Any] = [None] * len(patterns)

    def __getitem__(self, i: int) -> Any:
        pat = self._compiled[i]
        if pat is None:
            pat = self._compiled[i] = compile_pattern(self._patterns[i])
        return pat

    def __len__(self) -> int:
        return len(self._patterns)


class Compiled:
    """The rule set as matched: exact patterns, gates, and an optional prefilter."""

    def __init__(self, rules: list[Rule] | tuple[Rule, ...], *, prefilter: bool = True) -> None:
        self.rules = list(rules)
        self.exact = _OnFirstUse([r.pattern for r in self.rules])
        self.has_group = ["(?P<s>" in r.pattern for r in self.rules]
        self.gates = [GATES[r.gate] if r.gate else None for r in self.rules]
        self.multiline = any(r.multiline for r in self.rules)
        # Only rules that can span lines can be open across a line end (see open_at_end).
        self.open_rules = [i for i, r in enumerate(self.rules) if r.multiline]
        self.hold = {i: compile_pattern(self.rules[i].hold or self.rules[i].pattern) for i in self.open_rules}
        self._local = threading.local()  # per-thread hyperscan scratch: scans run in parallel
        self.db: Any = None
        fast: list[int] = []
        if prefilter and self.rules:
            self.db, fast = build([r.pattern for r in self.rules])
        taken = set(fast)
        self.slow = [i for i in range(len(self.rules)) if i not in taken]
        self.fast_count = len(fast)

    def scratch(self) -> Any:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self.db)
        return scratch

    def spans(self, text: str) -> list[Span]:
        """Gated matches as (start, end, rule index), unresolved (they may overlap)."""
        found: list[Span] = []
        for rid, rs in self._candidate_regions(text).items():
            pat = self.exact[rid]
            for a, b in rs:
                for m in pat.finditer(text, a, b):
                    self._keep(m, rid, found)
        lowered = None
        for rid in self.slow:
            keywords = self.rules[rid].keywords
            if keywords:
                lowered = text.lower() if lowered is None else lowered
                if not any(k.lower() in lowered for k in keywords):
                    continue
            for m in self.exact[rid].finditer(text):
                self._keep(m, rid, found)
        return found

    def _candidate_regions(self, text: str) -> dict[int, list[tuple[int, int]]]:
        if self.db is None:
            return {}
        data = text.encode("utf-8")
        hits: list[tuple[int, int]] = []

        def on_match(rule_id, start, end, flags, context):
            hits.append((rule_id, end))
            return None

        self.db.scan(data, match_event_handler=on_match, scratch=self.scratch())
        if not hits:
            return {}
        # Hit ends (bytes) → the lines a match can lie on, merged per rule, in characters.
        regions: dict[int, list[tuple[int, int]]] = {}
        rules = self.rules
        for rule_id, end in set(hits):
            back = max(0, end - MAX_MULTILINE_HOLD) if rules[rule_id].multiline else max(0, end - 1)
            ls = data.rfind(b"\n", 0, back) + 1
            le = data.find(b"\n", end - 1 if end else 0)
            regions.setdefault(rule_id, []).append((ls, len(data) if le < 0 else le))
        merged = {rid: _merge(sorted(rs)) for rid, rs in regions.items()}
        if text.isascii():
            return merged
        return {rid: [(len(data[:a].decode("utf-8", "replace")), len(data[:b].decode("utf-8", "replace")))
                      for a, b in rs] for rid, rs in merged.items()}

    def _keep(self, m, rid: int, found: list[Span]) -> None:
        if not self.rules[rid].multiline and "\n" in m.group(0)[:-1]:
            return  # one-line rules never reach across a line end (the stream relies on it)
        gate = self.gates[rid]
        if gate is not None and not gate(m):
            return
        if self.has_group[rid] and m.start("s") >= 0:
            found.append((m.start("s"), m.end("s"), rid))
        else:
            found.append((m.start(), m.end(), rid))

    def open_at_end(self, text: str, window_start: int) -> int | None:
        """Earliest start of a multi-line match that touches the end of ``text``.

        A one-line rule cannot be open across the last line end, and the stream never
        releases text after it, so only multi-line rules are asked: from the window,
        or from their last opener, partial matching tells whether a match may still
        grow.
        """
        earliest = None
        n = len(text)
        for rid in self.open_rules:
            start = window_start
            for opener in self.rules[rid].openers:
                p = text.rfind(opener, max(0, n - MAX_MULTILINE_HOLD))
                if p >= 0:
                    start = min(start, p)
            for m in self.hold[rid].finditer(text, start, n, partial=True):
                # A match followed by nothing but line ends and one unfinished line may
                # still grow: a PEM body whose END line has not arrived matches as a
                # truncated block meanwhile.
                if m.start() < n and (m.end() == n or "\n" not in text[m.end():n].strip()):
                    if earliest is None or m.start() < earliest:
                        earliest = m.start()
                    break
        return earliest


def resolve(found: list[Span], rules: list[Rule]) -> list[Span]:
    """Overlapping spans become one, named by the earliest-starting, most specific rule."""
    out: list[Span] = []
    for s, e, rid in sorted(set(found), key=lambda f: (f[0], rules[f[2]].priority, f[2], -f[1])):
        if e <= s:
            continue
        if out and s < out[-1][1]:
            ps, pe, prid = out[-1]
            out[-1] = (ps, max(pe, e), prid)
        else:
            out.append((s, e, rid))
    return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@functools.lru_cache(maxsize=64)
def compiled_for(rules: tuple[Rule, ...]) -> Compiled:
    """One compiled set per distinct rule tuple: every Redactor of the process shares the
    built-in pack's (compiling 150+ patterns into hyperscan takes a while)."""
    return Compiled(rules)
