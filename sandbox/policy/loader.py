"""TOML text → validated CleanroomConfig, with errors that name file, key, line and
what is allowed. Never a traceback for bad input: everything becomes PolicyError."""

from __future__ import annotations

import copy
import difflib
import ipaddress
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from sandbox.errors import PolicyError
from sandbox.policy.isolation import CAPABILITIES, normalise_capability
from sandbox.policy.model import (
    DURATION_FIELDS,
    LEVELS,
    ORIGIN_FIELDS,
    SIZE_FIELDS,
    SUBTABLES,
    CleanroomConfig,
    field_names,
)
from sandbox.policy.units import DURATION_FORMS, SIZE_FORMS, parse_duration, parse_size
from sandbox.redact.dialect import DIALECT, PatternError, compile_pattern
from sandbox.redact.pack import BUILTIN_IDS, policy_rules, unknown_rule_ids

TOP_FIELDS = set(field_names(CleanroomConfig))


def load_policy(path: str | os.PathLike[str], env: str | None = None) -> CleanroomConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("policy file not found", file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file: {exc}", file=str(p)) from None
    return load_policy_text(text, file=str(p), env=env)


def load_policy_text(text: str, *, file: str = "<string>", env: str | None = None) -> CleanroomConfig:
    if env is None:
        env = os.environ.get("CLEANROOM_ENV")
    env = env or None  # an empty --env or CLEANROOM_ENV= means "no overlay"
    locator = _Locator(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise PolicyError(f"not valid TOML: {exc}", file=file, line=line,
                          allowed="TOML 1.0 syntax") from None
    unknown_top = [k for k in doc if k != "cleanroom"]
    if unknown_top:
        key = unknown_top[0]
        raise PolicyError("unknown top-level key or table", file=file, key=key, line=locator.line([key]),
                          allowed="[cleanroom] and its sub-tables")
    table = doc.get("cleanroom", {})
    if not isinstance(table, dict):
        raise PolicyError("must be a table", file=file, key="cleanroom", line=locator.line(["cleanroom"]),
                          allowed="[cleanroom]")
    _reject_non_finite(table, ["cleanroom"], file, locator)
    base, overlays = _split_overlays(table)
    effective = _build(base, file=file, prefix=["cleanroom"], locator=locator)
    # Every overlay is validated now, even unselected ones: a typo in [cleanroom.prod]
    # must fail on a developer's machine, not first in production. Only the merged
    # result is checked: an overlay alone may rely on the base for cross-key rules
    # (memory_swap_bytes >= memory_bytes, allowlist needs addresses).
    for name, overlay in overlays.items():
        _hint_typo(name, overlay, file, locator)
        merged = _build(_deep_merge(base, overlay), file=file, prefix=["cleanroom", name], locator=locator)
        if name == env:
            effective = merged
    if env is not None and env not in overlays:
        available = ", ".join(sorted(overlays)) or "none defined"
        raise PolicyError(f"unknown environment overlay {env!r}", file=file, key=f"cleanroom.{env}",
                          allowed=f"overlays in this file: {available}")
    return msgspec.structs.replace(effective, source_file=file, environment=env)


def _reject_non_finite(node: Any, path: list[str | int], file: str, locator: _Locator) -> None:
    """TOML allows inf and nan; no limit, timeout or interval means anything with them."""
    if isinstance(node, float) and not math.isfinite(node):
        raise PolicyError(f"{node} is not allowed", file=file, key=_dotted(path),
                          line=locator.line(path),
                          allowed="a finite number")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        _reject_non_finite(value, path + [key], file, locator)


def _hint_typo(name: str, overlay: dict[str, Any], file: str, locator: _Locator) -> None:
    """[cleanroom.resource_limit] is read as an overlay named "resource_limit"; when the
    name is close to a section's, say so instead of a puzzling "unknown key" inside it."""
    close = difflib.get_close_matches(name, [k for k in SUBTABLES if "." not in k], n=1, cutoff=0.8)
    if close and not set(overlay) <= TOP_FIELDS:
        raise PolicyError(f"[cleanroom.{name}] is read as an environment overlay, and its keys are not "
                          f"[cleanroom] keys; did you mean [cleanroom.{close[0]}]?", file=file,
                          key=f"cleanroom.{name}", line=locator.line(["cleanroom", name]),
                          allowed=f"sections {', '.join(k for k in SUBTABLES if '.' not in k)}, "
                                  "or overlays holding [cleanroom] keys")


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


def _build(raw: dict[str, Any], *, file: str, prefix: list[str], locator: _Locator) -> CleanroomConfig:
    def fail(path: list[str | int], message: str, allowed: str | None) -> PolicyError:
        return PolicyError(message, file=file, key=_dotted(prefix + path),
                           line=locator.line([*prefix, *path]),
                           allowed=allowed)

    for key in ORIGIN_FIELDS:
        if key in raw:
            raise fail([key], "unknown key", _allowed_keys(CleanroomConfig))
    data = _normalise_units(raw, fail)
    try:
        cfg = msgspec.convert(data, CleanroomConfig)
    except msgspec.ValidationError as exc:
        raise _translate(exc, fail) from None
    _check_semantics(cfg, fail)
    return cfg


def _normalise_units(raw: dict[str, Any], fail) -> dict[str, Any]:
    """Human sizes and durations → numbers, before msgspec sees them."""
    data = copy.deepcopy(raw)
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
                    raise fail(parts + [name], str(exc).split(" (")[0], forms) from None
    return data


_PATH_RE = re.compile(r"at `\$(.*)`$")


def _translate(exc: msgspec.ValidationError, fail) -> PolicyError:
    """msgspec's "... - at `$.a.b[2]`" → our key path and an allowed-values sentence."""
    text = str(exc)
    m = _PATH_RE.search(text)
    path: list[str | int] = []
    if m:
        for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", m.group(1)):
            path.append(part[0] if part[0] else int(part[1]))
        text = text[: m.start()].rstrip(" -")
    if text.startswith("Object contains unknown field"):
        name = text.split("`")[1]
        struct = _struct_at([p for p in path if isinstance(p, str)])
        return fail(path + [name], "unknown key" + _did_you_mean(name, field_names(struct)), _allowed_keys(struct))
    return fail(path, _plain(text), _allowed_for(text, path))


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plain(message: str) -> str:
    """msgspec's "Expected `int` >= 1" → words; the allowed part carries the bounds."""
    if re.match(r"Expected `[^`]+`\s*(>=|<=|>|<)", message):
        return "out of range"
    m = re.match(r"Expected `[^`]+`, got `([^`]+)`", message)
    if m:
        return f"wrong type (got {_TYPE_WORDS.get(m.group(1), m.group(1))})"
    m = re.match(r"Invalid enum value (.+)$", message)
    if m:
        return f"unknown value {m.group(1)}"
    return message


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "array": "a list", "object": "a table", "null": "nothing"}
_LITERALS = {
    "security_level": ", ".join(LEVELS),
    "audit_level": ", ".join(LEVELS),
    "network_mode": "none, egress, allowlist",
}


def _allowed_for(message: str, path: list[str | int]) -> str | None:
    names = [p for p in path if isinstance(p, str)]
    if "Invalid enum value" in message and names and names[-1] in _LITERALS:
        return _LITERALS[names[-1]]
    m = re.match(r"Expected `([^`]+)`(?:\s*(>=|<=|>|<)\s*([-\d.]+))?", message)
    if not m:
        return None
    kinds = [_TYPE_WORDS.get(k.strip(), k.strip()) for k in m.group(1).split("|")]
    allowed = " or ".join(k for k in kinds if k != "nothing")
    if m.group(2):
        allowed += f" {m.group(2)} {m.group(3)}"
    return allowed


def _struct_at(path: list[str]) -> type[msgspec.Struct]:
    key = ".".join(path)
    return SUBTABLES.get(key, CleanroomConfig)


def _allowed_keys(struct: type[msgspec.Struct]) -> str:
    return ", ".join(field_names(struct))


def _check_semantics(cfg: CleanroomConfig, fail) -> None:
    sp = cfg.security_policy
    for field in ("blocked_addresses", "allowed_addresses"):
        for i, cidr in enumerate(getattr(sp, field)):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise fail(["security_policy", field, i], f"{cidr!r} is not a valid CIDR",
                           'IPv4 or IPv6 networks like "10.0.0.0/8" or "fd00::/8"') from None
    _check_redaction(sp, fail)
    for i, cap in enumerate(sp.allowed_capabilities or []):
        if normalise_capability(cap) not in CAPABILITIES:
            raise fail(["security_policy", "allowed_capabilities", i], f"unknown capability {cap!r}",
                       "Linux capability names such as CHOWN or CAP_NET_BIND_SERVICE")
    if sp.network_mode == "allowlist" and not sp.allowed_addresses:
        raise fail(["security_policy", "allowed_addresses"], "network_mode \"allowlist\" needs at least one address",
                   "a list of CIDRs the sandbox may reach")
    if sp.audit_hmac_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", sp.audit_hmac_key_env):
        raise fail(["security_policy", "audit_hmac_key_env"], f"{sp.audit_hmac_key_env!r} is not a variable name",
                   "an environment variable name like CLEANROOM_AUDIT_KEY")
    sb = cfg.resource_limits.sandbox
    if sb.memory_swap_bytes is not None and sb.memory_bytes is not None and sb.memory_swap_bytes < sb.memory_bytes:
        raise fail(["resource_limits", "sandbox", "memory_swap_bytes"],
                   f"memory+swap ({sb.memory_swap_bytes}) is below memory ({sb.memory_bytes})",
                   "a value >= resource_limits.sandbox.memory_bytes")


def _check_redaction(sp: Any, fail) -> None:
    """Redaction patterns compile in the redactor's own dialect; disabled ids name
    built-in rules; extra rules pass the same validation as the built-in pack."""
    for i, pattern in enumerate(sp.redaction_patterns):
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise fail(["security_policy", "redaction_patterns", i], f"invalid regular expression: {exc}",
                       DIALECT) from None
    for i, rid, hint in unknown_rule_ids(sp.redaction_rules_disabled, BUILTIN_IDS):
        raise fail(["security_policy", "redaction_rules_disabled", i], f"unknown built-in rule {rid!r}{hint}",
                   "ids of built-in rules such as aws_access_key_id (see sandbox/redact/pack/*.toml)")
    try:
        policy_rules(sp.redaction_rules, BUILTIN_IDS)
    except PolicyError as exc:
        path: list[str | int] = ["security_policy"]
        for part in re.findall(r"\.([A-Za-z_]+)|\[(\d+)\]", "." + (exc.key or "").split("security_policy", 1)[-1]):
            path.append(part[0] if part[0] else int(part[1]))
        raise fail(path, exc.reason, exc.allowed) from None


def _dotted(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


class _Locator:
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
                    starts, last = _array_items(lines, n - 1, k.end())
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


def _array_items(lines: list[str], row: int, col: int) -> tuple[list[int], int]:
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
