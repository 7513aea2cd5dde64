"""TOML text → validated CleanroomConfig, with errors that name file, key, line and
what is allowed. Never a traceback for bad input: everything becomes PolicyError.

Validation collects: every problem of a file is found in one pass (``policy_errors``),
the way linters report; ``load_policy_text`` raises the first, carrying all of them.
An offending key is reported, then taken out and its default stands in, so the
rest of the file is still checked.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from sandbox.errors import PolicyError
from sandbox.policy.locate import Locator
from sandbox.policy.messages import allowed_keys, translate
from sandbox.policy.model import DURATION_FIELDS, ORIGIN_FIELDS, SIZE_FIELDS, SUBTABLES, PolicyConfig, field_names
from sandbox.policy.rules import check_rules
from sandbox.policy.seccomp_file import profile_problem
from sandbox.policy.units import DURATION_FORMS, SIZE_FORMS, parse_duration, parse_size

TOP_FIELDS = set(field_names(PolicyConfig))
C = TypeVar("C", bound=PolicyConfig)
# One removal per round; a file cannot hold more distinct errors than this in practice.
_MAX_ROUNDS = 500


def load_policy(path: str | os.PathLike[str], overlay: str | None = None, *, into: type[C]) -> C:
    return load_policy_text(_read(Path(path)), file=str(path), overlay=overlay, into=into)


def load_policy_text(text: str, *, file: str = "<string>", overlay: str | None = None, into: type[C]) -> C:
    cfg, errors = policy_errors(text, file=file, overlay=overlay, into=into)
    if errors:
        first = errors[0]
        first.errors = errors  # every problem of the file, for callers that show them all
        raise first
    assert cfg is not None
    return cfg


def policy_file_errors(path: str | os.PathLike[str], overlay: str | None = None, *, into: type[C],
                       controls: bool = False) -> tuple[C | None, list[PolicyError]]:
    try:
        text = _read(Path(path))
    except PolicyError as exc:
        return None, [exc]
    return policy_errors(text, file=str(path), overlay=overlay, into=into, controls=controls)


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("policy file not found", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file: {exc}", file=str(p)) from None


def policy_errors(text: str, *, file: str = "<string>", overlay: str | None = None, into: type[C],
                  controls: bool = False) -> tuple[C | None, list[PolicyError]]:
    """(the effective policy as ``into``, or None when there are errors; every error, in
    the order found). ``overlay`` defaults to $CLEANROOM_ENV; empty means none.
    ``controls`` also checks the compliance standards' controls (see rules.check_rules)."""
    env = overlay if overlay is not None else os.environ.get("CLEANROOM_ENV")
    env = env or None
    locator = Locator(text)
    errors: list[PolicyError] = []
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        return None, [PolicyError(f"not valid TOML: {exc}", file=file, line=line, allowed="TOML 1.0 syntax")]
    for key in [k for k in doc if k != "cleanroom"]:
        errors.append(PolicyError("unknown top-level key or table", file=file, key=key, line=locator.line([key]),
                                  allowed="[cleanroom] and its sub-tables"))
    table = doc.get("cleanroom", {})
    if not isinstance(table, dict):
        errors.append(PolicyError("must be a table", file=file, key="cleanroom", line=locator.line(["cleanroom"]),
                                  allowed="[cleanroom]"))
        return None, errors
    bad_numbers = _non_finite(table, [])
    for path in bad_numbers:
        errors.append(PolicyError(f"{_get(table, path)} is not allowed", file=file, key=_dotted(["cleanroom", *path]),
                                  line=locator.line(["cleanroom", *path]), allowed="a finite number"))
    for path in reversed(bad_numbers):  # later list items first, so earlier indices stay valid
        _drop(table, path)
    base, overlays = _split_overlays(table)
    effective, base_errors, clean_base = _build(base, file=file, prefix=["cleanroom"], locator=locator, into=into,
                                                controls=controls)
    errors += base_errors
    seen = {_signature(e, "cleanroom.") for e in base_errors}
    # Every overlay is validated now, even unselected ones: a typo in [cleanroom.prod]
    # must fail on a developer's machine, not first in production. Only the merged
    # result is checked: an overlay alone may rely on the base for cross-key rules
    # (memory_swap_bytes >= memory_bytes, allowlist needs addresses).
    for name, table_of in overlays.items():
        typo = _hint_typo(name, table_of, file, locator)
        if typo is not None:
            errors.append(typo)
            continue
        prefix = ["cleanroom", name]
        merged, merged_errors, _ = _build(_deep_merge(clean_base, table_of), file=file, prefix=prefix, locator=locator,
                                          into=into, controls=controls)
        # A rule broken by the base alone was reported once, for the base.
        errors += [e for e in merged_errors if _signature(e, f"cleanroom.{name}.") not in seen]
        if name == env:
            effective = merged
    if env is not None and env not in overlays:
        available = ", ".join(sorted(overlays)) or "none defined"
        errors.append(PolicyError(f"unknown environment overlay {env!r}", file=file, key=f"cleanroom.{env}",
                                  allowed=f"overlays in this file: {available}"))
    if errors or effective is None:
        return None, errors
    return msgspec.structs.replace(effective, source_file=file, environment=env), []


def _signature(err: PolicyError, prefix: str) -> tuple[str, str]:
    return (err.key or "").removeprefix(prefix), err.reason


def _non_finite(node: Any, path: list[str | int]) -> list[list[str | int]]:
    """TOML allows inf and nan; no limit, timeout or interval means anything with them."""
    if isinstance(node, float) and not math.isfinite(node):
        return [path]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [found for key, value in items for found in _non_finite(value, path + [key])]


def _hint_typo(name: str, overlay: dict[str, Any], file: str, locator: Locator) -> PolicyError | None:
    """[cleanroom.resource_limit] is read as an overlay named "resource_limit"; when the
    name is close to a section's, say so instead of a puzzling "unknown key" inside it."""
    close = difflib.get_close_matches(name, [k for k in SUBTABLES if "." not in k], n=1, cutoff=0.8)
    if close and not set(overlay) <= TOP_FIELDS:
        return PolicyError(f"[cleanroom.{name}] is read as an environment overlay, and its keys are not "
                           f"[cleanroom] keys; did you mean [cleanroom.{close[0]}]?", file=file,
                           key=f"cleanroom.{name}", line=locator.line(["cleanroom", name]),
                           allowed=f"sections {', '.join(k for k in SUBTABLES if '.' not in k)}, "
                                   "or overlays holding [cleanroom] keys")
    return None


def _split_overlays(table: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    base: dict[str, Any] = {}
    overlays: dict[str, dict[str, Any]] = {}
    for key, value in table.items():
        if key not in TOP_FIELDS and key not in ORIGIN_FIELDS and isinstance(value, dict):
            overlays[key] = value
        else:
            base[key] = value
    return base, overlays


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Errors:
    """The errors of one build, and which keys (and list items) were taken out.

    Removing a list item shifts the later ones; ``original`` maps a position in the
    shrunken list back to the one the user wrote, so every error names its line."""

    def __init__(self, file: str, prefix: list[str], locator: Locator) -> None:
        self.file, self.prefix, self.locator = file, prefix, locator
        self.found: list[PolicyError] = []
        self.keys: set[str] = set()
        self._removed: dict[str, list[int]] = {}

    def fail(self, path: list[str | int], message: str, allowed: str | None) -> PolicyError:
        full = [*self.prefix, *path]
        err = PolicyError(message, file=self.file, key=_dotted(full), line=self.locator.line(full), allowed=allowed)
        self.found.append(err)
        self.keys.add(".".join(p for p in path if isinstance(p, str)))
        return err

    def original(self, path: list[str | int]) -> list[str | int]:
        if not path or not isinstance(path[-1], int):
            return path
        index = path[-1]
        for gone in sorted(self._removed.get(_dotted(path[:-1]), [])):
            if gone <= index:
                index += 1
        return [*path[:-1], index]

    def removed(self, path: list[str | int], original: list[str | int]) -> None:
        if path and isinstance(path[-1], int):
            self._removed.setdefault(_dotted(path[:-1]), []).append(int(original[-1]))

    def had_error(self, dotted: str) -> bool:
        return dotted in self.keys


def _build(raw: dict[str, Any], *, file: str, prefix: list[str], locator: Locator, into: type[C],
           controls: bool) -> tuple[C | None, list[PolicyError], dict[str, Any]]:
    """(the config with bad keys at their defaults, the errors, the raw table without the bad keys)."""
    out = _Errors(file, prefix, locator)
    data = copy.deepcopy(raw)
    for key in ORIGIN_FIELDS:
        if key in data:
            out.fail([key], "unknown key", allowed_keys(PolicyConfig))
            del data[key]
    _normalise_units(data, out)
    clean = copy.deepcopy(data)
    cfg = None
    for _ in range(_MAX_ROUNDS):
        try:
            cfg = msgspec.convert(data, into)
            break
        except msgspec.ValidationError as exc:
            path, message, allowed = translate(exc)
            original = out.original(path)
            out.fail(original, message, allowed)
            if not _drop(data, path):
                break  # nothing left to take out: report what was found
            out.removed(path, original)
            _drop(clean, path)
    if cfg is not None:
        check_rules(cfg, out.fail, out.had_error, controls=controls)
        cfg = _resolve_seccomp(cfg, file, out)
    return cfg, out.found, clean


def _resolve_seccomp(cfg: C, file: str, out: _Errors) -> C:
    """A user's own seccomp profile: made absolute (relative to the policy file, since the
    Podman service reads it from its own directory) and checked to be a usable profile."""
    sp = cfg.security_policy
    if sp.seccomp_profile in (None, "default"):
        return cfg
    path = Path(sp.seccomp_profile).expanduser()
    if not path.is_absolute():
        base = Path(file).resolve().parent if Path(file).is_file() else Path.cwd()
        path = base / path
    problem = profile_problem(path)
    if problem:
        out.fail(["security_policy", "seccomp_profile"], problem,
                 '"default" (cleanroom\'s profile for the security level) or the path of a JSON seccomp profile')
        return cfg
    return cfg.with_changes(security_policy=msgspec.structs.replace(sp, seccomp_profile=str(path)))


def _normalise_units(data: dict[str, Any], out: _Errors) -> None:
    """Human sizes and durations → numbers, before msgspec sees them."""
    jobs = [(sec, names, parse_size, SIZE_FORMS) for sec, names in SIZE_FIELDS.items()]
    jobs += [(sec, names, parse_duration, DURATION_FORMS) for sec, names in DURATION_FIELDS.items()]
    for section, names, parse, forms in jobs:
        node: Any = data
        parts = [p for p in section.split(".") if p]
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        for name in names:
            if name in node and node[name] is not None:
                try:
                    node[name] = parse(node[name])
                except ValueError as exc:
                    out.fail(parts + [name], str(exc).split(" (")[0], forms)
                    del node[name]


def _get(node: Any, path: list[str | int]) -> Any:
    for part in path:
        node = node[part]
    return node


def _drop(node: Any, path: list[str | int]) -> bool:
    """Remove what ``path`` points at; False when it is not there (no progress possible)."""
    if not path:
        return False
    try:
        parent = _get(node, path[:-1])
        if isinstance(parent, dict) and path[-1] in parent:
            del parent[path[-1]]
            return True
        if isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
            del parent[path[-1]]
            return True
    except (KeyError, IndexError, TypeError):
        pass
    return False


def _dotted(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None
