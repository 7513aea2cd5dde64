"""Best-effort line numbers for keys of a policy's TOML text: tomllib gives values,
not positions, and every error must name the line a user should look at."""

from __future__ import annotations

import re


class Locator:
    """Best-effort line numbers: table headers, ``key =`` lines of the TOML text, and
    the line each element of an array starts on (guide-style lists span lines)."""

    _HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\s\"]+?)\s*\]\s*(#.*)?$")
    # Bare and dotted keys (resource_limits.max_container_count = 5), quotes allowed.
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=\s*")

    def __init__(self, text: str) -> None:
        self.tables: dict[str, int] = {}
        self.keys: dict[str, int] = {}
        self.items: dict[str, list[int]] = {}
        lines = text.splitlines()
        current = ""
        n = 0
        while n < len(lines):
            line = lines[n]
            n += 1
            h = self._HEADER.match(line)
            if h and not line.lstrip().startswith("[["):
                current = h.group(1).replace(" ", "").replace('"', "")
                self.tables.setdefault(current, n)
                continue
            k = self._KEY.match(line)
            if k:
                key = re.sub(r"[\s\"']", "", k.group(1))
                dotted = f"{current}.{key}" if current else key
                self.keys.setdefault(dotted, n)
                if line[k.end():].startswith("["):
                    starts, last = array_items(lines, n - 1, k.end())
                    self.items.setdefault(dotted, starts)
                    n = max(n, last)  # lines inside the array are not keys

    def line(self, path: list[str | int]) -> int | None:
        if path and isinstance(path[-1], int):
            starts = self.items.get(".".join(str(p) for p in path[:-1] if isinstance(p, str)), [])
            if path[-1] < len(starts):
                return starts[path[-1]]
        names = [p for p in path if isinstance(p, str)]
        # The key itself, else the nearest enclosing key (an inline table's) or header.
        while names:
            prefix = ".".join(names)
            if prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.tables:
                return self.tables[prefix]
            names = names[:-1]
        return None


def array_items(lines: list[str], row: int, col: int) -> tuple[list[int], int]:
    """Line numbers where each top-level element of the array at lines[row][col] starts,
    and the line number it closes on. Knows strings, escapes, comments and nesting."""
    starts: list[int] = []
    depth, quote, expecting = 0, "", True
    for r in range(row, len(lines)):
        text = lines[r]
        i = col if r == row else 0
        while i < len(text):
            ch = text[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch == "#":
                break
            elif ch in "[{":
                if depth == 1 and expecting:
                    starts.append(r + 1)
                    expecting = False
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    return starts, r + 1
            elif ch == ",":
                expecting = depth == 1 or expecting
            elif not ch.isspace():
                if depth == 1 and expecting:
                    starts.append(r + 1)
                    expecting = False
                if ch in "\"'":
                    quote = ch
            i += 1
    return starts, len(lines)
