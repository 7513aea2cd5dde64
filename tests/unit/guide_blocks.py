"""The reference guide's TOML blocks, each tagged Good or Avoid by the nearest bold
marker above it. Read from ../shared when present, else from the committed copies."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO.parent / "shared" / "reference" / "cleanroom-best-practices.md"
COPIES = Path(__file__).parent / "data" / "guide_blocks"


def extract(text: str) -> list[tuple[str, str]]:
    """[(kind, toml_text)] with kind "good" or "avoid"."""
    out = []
    kind = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("**Good**"):
            kind = "good"
        elif line.startswith("**Avoid**"):
            kind = "avoid"
        elif line.startswith("```toml"):
            body = []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((kind, "\n".join(body) + "\n"))
        i += 1
    return out


def split_avoid(text: str) -> list[str]:
    """An Avoid block may hold several alternatives, each a comment then a table."""
    parts = re.split(r"\n(?=# )", "\n" + text)
    return [p.strip() + "\n" for p in parts if "[" in p]


def blocks() -> list[tuple[str, str, str]]:
    """[(id, kind, toml)] from the live guide if present, else the copies."""
    if GUIDE.is_file():
        found = extract(GUIDE.read_text())
        return [(f"guide-{n:02d}-{k}", k, t) for n, (k, t) in enumerate(found)]
    return [(p.stem, p.stem.rsplit("-", 1)[1], p.read_text()) for p in sorted(COPIES.glob("*.toml"))]
