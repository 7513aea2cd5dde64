"""Value gates: after a rule's pattern matched, is the masked part really a secret?

A pattern says where a secret would sit; a gate looks at what sits there. Documented
placeholders (``AKIAIOSFODNN7EXAMPLE``, ``********``, ``${VAR}``, ``changeme``) and, for
the generic keyword rules, values too plain to be credentials (``bearer``, ``512``,
``self.password``) stay as they are.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable

# Values that stand for a secret without being one: docs, templates, already masked.
_PLACEHOLDER_WORDS = frozenset("""
changeme change_me change-me changeit password passwd secret token apikey api_key none null nil true false
undefined empty hidden masked redacted placeholder dummy todo tbd xxx n/a na str string bytes required optional
sample default value yes no on off notset not_set unset bearer basic required_field env file stdin
""".split())
_PLACEHOLDER_WORDS_IN = ("example", "redacted", "placeholder", "changeme", "change_me", "replace_me", "replaceme",
                         "yourpass", "yourtoken", "yourkey", "xxxxx", "*****", "•••")
# Short markers could occur by chance inside a long random token: only short values.
_PLACEHOLDER_SHORT_PARTS = ("your_", "your-", "<your", "insert_", "dummy", "fake_", "_here", "-here", "{{", "}}")
_TEMPLATE = re.compile(r"^(?:\$\{?[A-Za-z_][\w:.\-]*\}?|%[A-Za-z_]\w*%|<[^<>]*>|\{[A-Za-z_][\w.]*\}|\(.*\))$")
_MASKED_RUN = re.compile(r"([xX*#•.?])\1{4,}")
_CODE_REF = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*$|[()\[\]]")
_PATHISH = re.compile(r"^(?:/|\./|\.\./|~/|[A-Za-z]:\\)|://")
_IDENTIFIER = re.compile(r"^[a-z]+(?:[_.][a-z]+)*(?:[_.\-]?\d+)?$")


def shannon(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def is_placeholder(value: str) -> bool:
    v = value.strip("\"'` ")
    low = v.lower()
    if len(v) < 3 or low in _PLACEHOLDER_WORDS or _TEMPLATE.match(v):
        return True
    if any(p in low for p in _PLACEHOLDER_WORDS_IN) or _MASKED_RUN.search(v):
        return True
    if len(v) <= 40 and any(p in low for p in _PLACEHOLDER_SHORT_PARTS):
        return True
    return len(set(v)) <= 2


def _password_like(value: str) -> bool:
    """A value after ``password=``: anything six characters or longer that is not a
    placeholder or a reference in code (``self.password``, ``os.environ[...]``)."""
    v = value.strip("\"'")
    if len(v) < 6 or is_placeholder(v):
        return False
    return not _CODE_REF.search(v)


def _random_like(value: str) -> bool:
    """A value after ``token=``/``api_key:``: long, mixed, high-entropy; not a path,
    URL, number, version or snake_case name."""
    v = value.strip("\"'")
    if len(v) < 12 or is_placeholder(v) or _PATHISH.search(v) or _IDENTIFIER.match(v):
        return False
    if _CODE_REF.search(v) and not any(c.isdigit() for c in v):
        return False
    has_alpha = any(c.isalpha() for c in v)
    mixed = any(c.isdigit() for c in v) or (any(c.isupper() for c in v) and any(c.islower() for c in v))
    return has_alpha and mixed and shannon(v) >= 3.0


# Keys whose values are passwords (a person chose them: short and plain is still secret).
_PASSWORD_KEY = re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret)$")
_STRICT_PASS_KEY = re.compile(r"(?i)(?:^|[_.\-]|[a-z](?=[A-Z]))pass$|(?:password|passwd|passphrase|pwd|secret)$")


def _assignment(m) -> bool:
    """Generic ``<key> = <value>``: the key's kind decides how strict the value gate is."""
    value = m.group("s")
    try:
        key = m.group("k") or ""
    except IndexError:
        key = ""
    key = key.strip("\"'<>-")
    if "public" in key.lower():
        return False  # public keys are published on purpose
    if _PASSWORD_KEY.search(key):
        if key.lower().endswith("pass") and not _STRICT_PASS_KEY.search(key):
            return False  # bypass, compass: not a password
        if value.strip("\"'").lower() in (key.lower(), key.lower().split("_")[-1]):
            return False  # password=password: a variable passed on
        return _password_like(value)
    return _random_like(value)


def _masked(m) -> str:
    try:
        s = m.group("s")
    except IndexError:
        s = None
    return s if s is not None else m.group(0)


GATES: dict[str, Callable[[object], bool]] = {
    "placeholder": lambda m: not is_placeholder(_masked(m)),
    "password": lambda m: _password_like(_masked(m)),
    "entropy": lambda m: _random_like(_masked(m)),
    "assignment": _assignment,
}
