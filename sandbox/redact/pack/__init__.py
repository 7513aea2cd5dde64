"""The built-in rule pack: one TOML file per family of credentials, loaded and
validated on import (a true positive not masked, or a false positive masked, is an
error; a stamp in the user's cache records a validation of the very same files and
code, so later processes skip repeating it), and a policy's own rules, checked the
same way.

A pack file::

    family = "cloud"      # every rule's family
    priority = 0          # provider formats 0, context rules 1, generic keyword rules 2

    [[rule]]
    id = "aws_access_key_id"
    pattern = '''\\b(?P<s>AKIA[A-Z0-9]{16})\\b'''
    keywords = ["AKIA"]
    tp = ["export AWS_ACCESS_KEY_ID=«AKIA⟨u16⟩»"]    # samples: see sandbox.redact.samples
    fp = ["AKIAIOSFODNN7EXAMPLE"]
"""

from __future__ import annotations

import difflib
import hashlib
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import regex

from sandbox.errors import PolicyError
from sandbox.redact.rules import Rule
from sandbox.redact.samples import Sample, expand
from sandbox.redact.validate import check_rule

PACK_DIR = Path(__file__).resolve().parent
# Load order matters only for naming overlaps of equal priority.
FAMILIES = ("cloud", "vcs_ci", "registries", "chat_mail", "payments", "ai", "observability", "infrastructure", "saas",
            "keys", "connections", "http", "cli", "config", "generic")
_RULE_KEYS = {"id", "pattern", "keywords", "tp", "fp", "gate", "multiline", "openers", "priority", "hold"}


def _samples(templates: Sequence[str], rule_id: str, kind: str) -> list[Sample]:
    return [expand(t, f"{rule_id}:{kind}:{i}") for i, t in enumerate(templates)]


def _validated_stamp(texts: Sequence[str]) -> Path:
    """Where a successful validation of exactly these pack files, with exactly this
    validator (the redaction package's sources), Python and regex engine, is recorded.
    Validation is deterministic (samples are drawn from seeded generators), so a stamp
    for the same inputs stands for running it again; any change misses the stamp."""
    h = hashlib.sha256(f"{sys.version}|{regex.__version__}".encode())
    for text in texts:
        h.update(text.encode())
    for source in sorted(Path(__file__).resolve().parents[1].glob("*.py")):
        h.update(source.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cleanroom"
    return cache / f"redact-pack-validated-{h.hexdigest()[:32]}"


def load_pack(families: Sequence[str] = FAMILIES, *, reuse_validation: bool = False,
              ) -> tuple[tuple[Rule, ...], dict[str, tuple[list[Sample], list[Sample]]]]:
    """Every built-in rule, in family order, and each rule's (true, false) positives.

    ``reuse_validation``: skip checking the samples when an earlier process checked these
    very files with this very code (the import of this module does; ~0.1 s per process)."""
    rules: list[Rule] = []
    samples: dict[str, tuple[list[Sample], list[Sample]]] = {}
    texts = [(PACK_DIR / f"{family}.toml").read_text(encoding="utf-8") for family in families]
    stamp = _validated_stamp(texts)
    validate = not (reuse_validation and stamp.exists())
    for family, text in zip(families, texts, strict=True):
        path = PACK_DIR / f"{family}.toml"
        doc = tomllib.loads(text)
        if doc.get("family") != family:
            raise PolicyError(f"pack file declares family {doc.get('family')!r}", file=str(path), key="family",
                              allowed=family)
        for raw in doc.get("rule", []):
            rid = raw.get("id", "?")

            def fail(field: str, message: str, allowed: str | None, _rid: str = rid, _path: Path = path,
                     ) -> PolicyError:
                return PolicyError(message, file=str(_path), key=f"rule {_rid}.{field}", allowed=allowed)

            unknown = set(raw) - _RULE_KEYS
            if unknown:
                raise fail(sorted(unknown)[0], "unknown key", ", ".join(sorted(_RULE_KEYS)))
            if rid in samples:
                raise fail("id", "duplicate rule id", "ids unique across the pack")
            rule = Rule(rid, raw["pattern"], multiline=raw.get("multiline", False),
                        openers=tuple(raw.get("openers", ())), hold=raw.get("hold"), family=family,
                        keywords=tuple(raw.get("keywords", ())), gate=raw.get("gate", "placeholder"),
                        priority=raw.get("priority", doc.get("priority", 1)))
            if rule.gate == "none":
                rule = Rule(**{**_fields(rule), "gate": None})
            tps, fps = _samples(raw.get("tp", []), rid, "tp"), _samples(raw.get("fp", []), rid, "fp")
            if not tps or not fps:
                raise fail("tp" if not tps else "fp", "every built-in rule needs true and false positive samples",
                           None)
            if validate:
                check_rule(rule, tps, fps, fail)
            rules.append(rule)
            samples[rid] = (tps, fps)
    if validate:
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
        except OSError:  # no cache to write: the next process validates again, that is all
            pass
    return tuple(rules), samples


def _fields(rule: Rule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in rule.__struct_fields__}


def policy_rules(raw_rules: Sequence[Any], known: Sequence[str],
                 key: str = "cleanroom.security_policy.redaction_rules") -> list[Rule]:
    """A policy's ``redaction_rules`` entries (tables or msgspec Structs) as Rules,
    validated like the pack: their ``examples`` must be masked, ``non_examples`` not."""
    out: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        get = raw.get if isinstance(raw, dict) else (lambda k, d=None, _r=raw: getattr(_r, k, d))
        rid = get("id") or ""

        def fail(field: str, message: str, allowed: str | None, _i: int = i) -> PolicyError:
            return PolicyError(message, key=f"{key}[{_i}].{field}", allowed=allowed)

        if rid in known:
            raise fail("id", f"{rid!r} is a built-in rule id", "a new id; to replace a built-in rule, also list it "
                       "in redaction_rules_disabled")
        if rid in seen:
            raise fail("id", f"duplicate rule id {rid!r}", "ids unique within redaction_rules")
        seen.add(rid)
        rule = Rule(rid, get("regex") or "", keywords=tuple(get("keywords") or ()), family="policy", priority=1)
        check_rule(rule, _samples(get("examples") or [], rid, "tp"), _samples(get("non_examples") or [], rid, "fp"),
                   fail)
        out.append(rule)
    return out


def unknown_rule_ids(ids: Sequence[str], known: Sequence[str]) -> list[tuple[int, str, str]]:
    """(index, id, did-you-mean hint) for each id that names no built-in rule."""
    out = []
    for i, rid in enumerate(ids):
        if rid not in known:
            close = difflib.get_close_matches(rid, list(known), n=1, cutoff=0.6)
            out.append((i, rid, f" (did you mean {close[0]!r}?)" if close else ""))
    return out


BUILTIN_RULES, PACK_SAMPLES = load_pack(reuse_validation=True)
BUILTIN_IDS = tuple(r.name for r in BUILTIN_RULES)
