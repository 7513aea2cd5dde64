"""The redactor: every rule, one pass, on whole texts and on live streams.

Speed comes from a multi-pattern prefilter (hyperscan when installed): a chunk with
no candidate goes out untouched without any per-rule regex work; candidates are
confirmed by the exact ``regex`` pattern on just the lines around them. Rules the
prefilter cannot compile are run exactly on every chunk, so nothing is ever
silently not matched.

Streams hold back only what could still turn into a secret: text after the last
newline, and any match (or partial match, via ``regex``'s partial matching) that
touches the end of what has arrived so far.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import urllib.parse
import weakref
from collections import Counter
from typing import Any

import regex
from loguru import logger

from sandbox.errors import PolicyError
from sandbox.redact.rules import BUILTIN_RULES, Rule

try:  # hyperscan ships x86_64 wheels only; the exact path below is always correct.
    import hyperscan  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None

_ANSI = regex.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_ANSI_OPEN = regex.compile(r"\x1b(\[[0-9;?]*[ -/]*)?$")
# Look-behind bounds for streams: one line may be held up to MAX_HOLD; a multi-line
# construct (a PEM block) up to MAX_MULTILINE_HOLD.
MAX_HOLD = 4096
MAX_MULTILINE_HOLD = 16384
_MIN_SECRET = 4

_live: weakref.WeakSet[Redactor] = weakref.WeakSet()
_NOSOM_BACK = 1024
if hyperscan is not None:
    _SOM_FLAGS = hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_UTF8
    _PLAIN_FLAGS = hyperscan.HS_FLAG_UTF8


def live_redactors() -> list[Redactor]:
    return list(_live)


class _Compiled:
    """The rule set as matched: exact patterns plus an optional prefilter."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.exact = [regex.compile(r.pattern) for r in rules]
        self.has_group = ["(?P<s>" in r.pattern for r in rules]
        self.multiline = any(r.multiline for r in rules)
        self.dbs: list[tuple[Any, bool]] = []
        self._scan_lock = threading.Lock()
        self.slow: list[int] = list(range(len(rules)))
        if hyperscan is not None and rules:
            self._build_prefilter()

    def _build_prefilter(self) -> None:
        som, nosom, slow = [], [], []
        for i, rule in enumerate(self.rules):
            expr = rule.pattern.replace("(?P<s>", "(").encode()
            if _prefilter_accepts(expr, True):
                som.append((i, expr))
            elif _prefilter_accepts(expr, False):
                # Start-of-match tracking makes some patterns too large; without it the
                # region is bounded back from the match end instead.
                nosom.append((i, expr))
            else:
                slow.append(i)
        self.dbs = []
        for group, flags in ((som, _SOM_FLAGS), (nosom, _PLAIN_FLAGS)):
            if group:
                db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
                db.compile(expressions=[e for _, e in group], ids=[i for i, _ in group],
                           elements=len(group), flags=[flags] * len(group))
                self.dbs.append((db, flags is _SOM_FLAGS))
        self.slow = slow
        self.fast_count = len(som) + len(nosom)

    def spans(self, text: str) -> list[tuple[int, int, int]]:
        """Non-overlapping (start, end, rule index) to mask, leftmost first."""
        found: list[tuple[int, int, int]] = []
        regions: dict[int, list[tuple[int, int]]] = {}
        if self.dbs:
            data = text.encode("utf-8")
            hits: list[tuple[int, int, int]] = []
            with self._scan_lock:  # a database's scratch space is not shareable
                for db, has_som in self.dbs:
                    def on_match(rule_id, start, end, flags, context, _som=has_som):
                        hits.append((rule_id, start if _som else max(0, end - _NOSOM_BACK), end))
                        return None

                    db.scan(data, match_event_handler=on_match)
            if hits:
                # Byte offsets → the enclosing lines in character offsets.
                for rule_id, start, end in hits:
                    ls = data.rfind(b"\n", 0, start) + 1
                    le = data.find(b"\n", end)
                    le = len(data) if le < 0 else le
                    regions.setdefault(rule_id, []).append((ls, le))
                regions = {rid: _merge(sorted(rs)) for rid, rs in regions.items()}
                if not text.isascii():
                    regions = {rid: [(len(data[:a].decode("utf-8", "replace")),
                                      len(data[:b].decode("utf-8", "replace"))) for a, b in rs]
                               for rid, rs in regions.items()}
        for rid, rs in regions.items():
            pat = self.exact[rid]
            for a, b in rs:
                for m in pat.finditer(text, a, b):
                    found.append(self._span(m, rid))
        for rid in self.slow:
            for m in self.exact[rid].finditer(text):
                found.append(self._span(m, rid))
        return _resolve(found)

    def _span(self, m, rid: int) -> tuple[int, int, int]:
        if self.has_group[rid] and m.start("s") >= 0:
            return (m.start("s"), m.end("s"), rid)
        return (m.start(), m.end(), rid)

    def open_at_end(self, text: str, window_start: int) -> int | None:
        """Earliest start of a match that touches the end of ``text`` (it may still grow)."""
        earliest = None
        n = len(text)
        for rid, pat in enumerate(self.exact):
            start = window_start
            opener = self.rules[rid].opener
            if opener is not None:
                p = text.rfind(opener, max(0, n - MAX_MULTILINE_HOLD))
                if p >= 0:
                    start = min(start, p)
            for m in pat.finditer(text, start, n, partial=True):
                if m.end() == n and m.start() < n:
                    if earliest is None or m.start() < earliest:
                        earliest = m.start()
                    break
        return earliest


@functools.lru_cache(maxsize=4096)
def _prefilter_accepts(expr: bytes, som: bool) -> bool:
    """Whether hyperscan compiles this pattern (cached: compiling is slow)."""
    try:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(expressions=[expr], ids=[0], elements=1, flags=[_SOM_FLAGS if som else _PLAIN_FLAGS])
    except Exception:
        return False
    return True


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _resolve(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Overlapping spans from different rules become one span, named by the first."""
    out: list[tuple[int, int, int]] = []
    for s, e, rid in sorted(set(found)):
        if e <= s:
            continue
        if out and s < out[-1][1]:
            ps, pe, prid = out[-1]
            out[-1] = (ps, max(pe, e), prid)
        else:
            out.append((s, e, rid))
    return out


def _strip_ansi(text: str) -> tuple[str, list[int] | None]:
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


class Redactor:
    """All rules of one environment; thread-safe; counts what it masked, per rule."""

    def __init__(self, patterns: list[str] | tuple[str, ...] = (), *, builtin: bool = True,
                 enabled: bool = True) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._base: list[Rule] = list(BUILTIN_RULES) if builtin else []
        for i, pattern in enumerate(patterns):
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise PolicyError(f"invalid regular expression: {exc}",
                                  key=f"cleanroom.security_policy.redaction_patterns[{i}]",
                                  allowed="Python regular expressions") from None
            self._base.append(Rule(f"policy_{i}", pattern))
        self._secrets: list[Rule] = []
        self._compiled = _Compiled(self._base)
        _live.add(self)

    @classmethod
    def from_policy(cls, security_policy: Any) -> Redactor:
        return cls(
            list(getattr(security_policy, "redaction_patterns", []) or []),
            builtin=getattr(security_policy, "enable_builtin_redaction_rules", True),
            enabled=getattr(security_policy, "enable_data_redaction", True),
        )

    # -- secrets ----------------------------------------------------------------
    def add_secret(self, value: str, name: str = "secret") -> None:
        """Mask this exact value and its base64, URL-encoded and JSON-escaped forms."""
        if len(value) < _MIN_SECRET:
            logger.warning("secret too short to mask safely; not registered", name=name, length=len(value))
            return
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
        rules = [Rule(f"secret:{name}", regex.escape(f)) for f in sorted(forms, key=len, reverse=True) if f]
        with self._lock:
            self._secrets.extend(rules)
            self._compiled = _Compiled(self._base + self._secrets)

    # -- one shot ---------------------------------------------------------------
    def redact(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        out, counts = _apply(self._compiled, text, len(text))
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


def _apply(compiled: _Compiled, text: str, cut: int,
           prepared: tuple[str, list[int] | None, list[tuple[int, int, int]]] | None = None,
           ) -> tuple[str, Counter[str]]:
    """Redact text[:cut] given the spans of the whole text (spans never cross cut)."""
    if prepared is None:
        clean, index = _strip_ansi(text)
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
    """One output stream: ``feed`` returns what is safe to show now, ``close`` the rest."""

    def __init__(self, redactor: Redactor) -> None:
        self._r = redactor
        self._pending = ""
        self.counts: Counter[str] = Counter()  # what this stream masked, per rule

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
        clean, index = _strip_ansi(text)
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
        out, counts = _apply(compiled, text, cut, (clean, index, spans))
        self._r._count(counts)
        self.counts.update(counts)
        self._pending = text[cut:]
        return out

    def _safe_cut(self, compiled: _Compiled, text: str, clean: str, index: list[int] | None) -> int:
        n = len(text)
        last_nl = text.rfind("\n")
        cut = last_nl + 1
        if n - cut > MAX_HOLD:
            # A line longer than the bound: release all but the bound's worth.
            cut = n - MAX_HOLD
        m = _ANSI_OPEN.search(text, max(0, n - 64))
        if m:
            cut = min(cut, m.start())
        window = max(0, len(clean) - MAX_HOLD)
        wnl = clean.rfind("\n", 0, max(0, len(clean) - 256))
        window = max(window, wnl + 1)
        open_start = compiled.open_at_end(clean, window)
        if open_start is not None:
            open_orig = index[open_start] if index is not None else open_start
            # Bounded: what has waited longer than the bound goes out as it is.
            limit = n - (MAX_MULTILINE_HOLD if compiled.multiline else MAX_HOLD)
            cut = min(cut, max(open_orig, limit))
        return max(cut, 0)
