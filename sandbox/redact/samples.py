"""Sample lines for rules, built from the token format at load time.

A sample is a template: ``⟨a36⟩`` stands for 36 random characters of class ``a``,
``⟨g⟩`` for a random UUID, and ``«...»`` marks the part that must disappear. So the
pack holds no credential-looking string verbatim, only its shape, and every load
draws the same (seeded) made-up values.
"""

from __future__ import annotations

import random
import re
import string
import zlib

CLASSES = {
    "a": string.ascii_letters + string.digits,
    "l": string.ascii_lowercase + string.digits,
    "u": string.ascii_uppercase + string.digits,
    "h": "0123456789abcdef",
    "H": "0123456789ABCDEF",
    "d": string.digits,
    "b": string.ascii_letters + string.digits + "+/",
    "w": string.ascii_letters + string.digits + "_-",
    "L": string.ascii_lowercase,
    "U": string.ascii_uppercase,
    "A": string.ascii_letters,
    "z": "abcdefghijklmnopqrstuvwxyz234567",
    "Z": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    "B": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",  # bech32, upper case (age keys)
}
_SLOT = re.compile(r"⟨([A-Za-z])(\d*)⟩")
_MARK = re.compile(r"«(.*?)»", re.S)


class Sample(tuple):
    """(text, secret): secret is the marked part, or None when nothing is marked."""

    __slots__ = ()

    def __new__(cls, text: str, secret: str | None) -> Sample:
        return super().__new__(cls, (text, secret))

    @property
    def text(self) -> str:
        return self[0]

    @property
    def secret(self) -> str | None:
        return self[1]


def _draw(rnd: random.Random, cls: str, n: int) -> str:
    if cls == "g":
        h = "".join(rnd.choice(CLASSES["h"]) for _ in range(32))
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
    if cls not in CLASSES:
        raise ValueError(f"unknown sample class {cls!r} (known: g, {', '.join(CLASSES)})")
    chars = CLASSES[cls]
    while True:
        value = "".join(rnd.choice(chars) for _ in range(n))
        # Made-up values look random: at least one digit and one letter when the class
        # has both, so entropy gates see what real tokens look like.
        if n < 6 or not (set(chars) & set(string.digits)) or not (set(chars) & set(string.ascii_letters)):
            return value
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def expand(template: str, seed: str) -> Sample:
    """The template with every slot drawn (seeded by ``seed``) and the marks removed."""
    rnd = random.Random(zlib.crc32(seed.encode()))
    text = _SLOT.sub(lambda m: _draw(rnd, m.group(1), int(m.group(2) or 0)), template)
    marked = _MARK.search(text)
    secret = marked.group(1) if marked else None
    return Sample(_MARK.sub(lambda m: m.group(1), text), secret)
