"""Rule validation, one way for the built-in pack and for a policy's own rules: the
pattern compiles, the gate exists, every true positive is masked (its marked secret
gone) and no false positive is touched."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sandbox.redact.dialect import DIALECT, PatternError, compile_pattern
from sandbox.redact.engine import Compiled, resolve
from sandbox.redact.gates import GATES
from sandbox.redact.rules import Rule
from sandbox.redact.samples import Sample

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,63}$")
Fail = Callable[[str, str, str | None], Exception]  # (field, message, allowed) -> error


def mask_one(rule: Rule, text: str) -> tuple[str, int]:
    """``text`` with only this rule applied (exact engine), and how many spans it masked."""
    c = Compiled([rule], prefilter=False)
    spans = resolve(c.spans(text), c.rules)
    out, pos = [], 0
    for s, e, _ in spans:
        out.append(text[pos:s])
        out.append(f"[REDACTED:{rule.name}]")
        pos = e
    out.append(text[pos:])
    return "".join(out), len(spans)


def _covered(rule: Rule, text: str, secret: str) -> bool:
    """Every character of every occurrence of ``secret`` lies inside a masked span."""
    c = Compiled([rule], prefilter=False)
    spans = resolve(c.spans(text), c.rules)
    start = text.find(secret)
    while start >= 0:
        if not any(s <= start and start + len(secret) <= e for s, e, _ in spans):
            return False
        start = text.find(secret, start + 1)
    return True


def check_rule(rule: Rule, tps: Sequence[Sample], fps: Sequence[Sample], fail: Fail) -> None:
    if not ID_RE.match(rule.name):
        raise fail("id", f"{rule.name!r} is not a rule id", "2-64 characters: a-z, 0-9, _ . - (starting alnum)")
    try:
        compile_pattern(rule.pattern)
    except PatternError as exc:
        raise fail("regex", f"invalid regular expression: {exc}", DIALECT) from None
    if rule.hold is not None:
        try:
            compile_pattern(rule.hold)
        except PatternError as exc:
            raise fail("hold", f"invalid regular expression: {exc}", DIALECT) from None
    if rule.gate is not None and rule.gate not in GATES:
        raise fail("gate", f"unknown gate {rule.gate!r}", ", ".join(GATES))
    if rule.multiline and not rule.openers:
        raise fail("openers", "a multi-line rule needs openers (literal text each match starts near)", None)
    for i, sample in enumerate(tps):
        out, n = mask_one(rule, sample.text)
        if n == 0:
            raise fail(f"examples[{i}]", f"true positive not matched: {sample.text!r}", None)
        if sample.secret and not _covered(rule, sample.text, sample.secret):
            raise fail(f"examples[{i}]", f"true positive matched but its secret survives (in part): {out!r}", None)
        low = sample.text.lower()
        if rule.keywords and not any(k.lower() in low for k in rule.keywords):
            raise fail(f"examples[{i}]", f"true positive has none of the keywords {list(rule.keywords)}", None)
    for i, sample in enumerate(fps):
        out, n = mask_one(rule, sample.text)
        if n:
            raise fail(f"non_examples[{i}]", f"false positive matched: {sample.text!r} -> {out!r}", None)
