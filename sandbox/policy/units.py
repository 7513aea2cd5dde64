"""Sizes and durations as policy authors write them: 8589934592, "8GiB", "30s"."""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(i?)([bB]?)\s*$")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

SIZE_FORMS = 'an integer number of bytes or a string like "512MiB", "8GiB", "100MB"'
DURATION_FORMS = 'seconds as a number, or a string like "30s", "5m", "2h"'


def parse_size(value: object) -> int:
    """Bytes from an int or a human string; "GiB" is 1024³, "GB" is 1000³."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got a boolean ({SIZE_FORMS})")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            number, prefix, binary, _b = m.groups()
            base = 1024 if binary else 1000
            return int(float(number) * base ** _POWERS[prefix.lower()])
    raise ValueError(f"{value!r} is not a size ({SIZE_FORMS})")


def parse_duration(value: object) -> float:
    """Seconds from a number or a string with a unit."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got a boolean ({DURATION_FORMS})")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _SECONDS[m.group(2)]
    raise ValueError(f"{value!r} is not a duration ({DURATION_FORMS})")
