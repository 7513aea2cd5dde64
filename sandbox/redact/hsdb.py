"""The hyperscan side of a rule set: one block-mode database of every rule it can
take, compiled once per process and kept on disk between processes.

No start-of-match tracking: it makes big rule sets slow to compile and slower to
scan. A hit's end is enough: a one-line rule's match lies on the line of its last
character, and a multi-line rule's within the stream's multi-line bound before it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from loguru import logger

try:  # hyperscan ships x86_64 wheels only; the exact path is always correct without it.
    import hyperscan  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None

FLAGS = hyperscan.HS_FLAG_UTF8 if hyperscan is not None else 0
_CACHE_MIN = 32  # rule sets smaller than this compile in milliseconds: not worth a file


def prefilter_expression(pattern: str) -> bytes:
    return pattern.replace("(?P<s>", "(").replace("(?P<k>", "(").encode()


def _compile(exprs: list[bytes], ids: list[int]) -> Any:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=[FLAGS] * len(exprs))
    return db


def _accepted(exprs: list[bytes]) -> list[int]:
    """Indexes of the expressions hyperscan compiles (one try for all, then one by one)."""
    try:
        _compile(exprs, list(range(len(exprs))))
        return list(range(len(exprs)))
    except Exception:
        ok = []
        for i, e in enumerate(exprs):
            try:
                _compile([e], [0])
                ok.append(i)
            except Exception:
                pass
        return ok


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cleanroom" / "redact"


def build(patterns: list[str]) -> tuple[Any, list[int]]:
    """(database, indexes of the patterns in it); (None, []) without hyperscan."""
    if hyperscan is None or not patterns:
        return None, []
    exprs = [prefilter_expression(p) for p in patterns]
    key = hashlib.sha256(b"\0".join([str(hyperscan.__version__).encode(), str(FLAGS).encode(), *exprs])).hexdigest()
    path = _cache_dir() / f"{key[:32]}.hsdb"
    if len(exprs) >= _CACHE_MIN:
        loaded = _load(path)
        if loaded is not None:
            return loaded
    ok = _accepted(exprs)
    if not ok:
        return None, []
    db = _compile([exprs[i] for i in ok], ok)
    if len(exprs) >= _CACHE_MIN:
        _store(path, db, ok)
    return db, ok


def _load(path: Path) -> tuple[Any, list[int]] | None:
    try:
        blob = path.read_bytes()
        head, _, body = blob.partition(b"\n")
        ids = [int(x) for x in head.split(b",") if x]
        return hyperscan.loadb(body, hyperscan.HS_MODE_BLOCK), ids
    except Exception:  # missing, unreadable or from another hyperscan build: compile again
        return None


def _store(path: Path, db: Any, ids: list[int]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        blob = ",".join(map(str, ids)).encode() + b"\n" + hyperscan.dumpb(db)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home only costs the next process a compile
        logger.debug("redaction rule cache not written", path=str(path), error=str(exc))
