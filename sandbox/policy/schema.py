"""A JSON Schema of the policy file, for editors (taplo / Even Better TOML)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from sandbox.policy.config import CleanroomConfig
from sandbox.policy.model import DURATION_FIELDS, ORIGIN_FIELDS, SIZE_FIELDS

_SIZE_STRING = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP]i?)?[bB]?\s*$",
                "description": 'bytes, e.g. "512MiB", "8GiB", "100MB"'}
_DURATION_STRING = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$",
                    "description": 'a duration, e.g. "30s", "5m", "2h"'}
_DEF_NAMES = {
    "": "CleanroomConfig",
    "resource_limits": "ResourceLimits",
    "resource_limits.sandbox": "SandboxLimits",
    "resource_limits.services": "ServicesLimits",
    "security_policy": "SecurityPolicy",
    "performance_monitoring": "PerformanceMonitoring",
    "performance_monitoring.thresholds": "Thresholds",
}


def _also_string(prop: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Let a numeric property also take the human string form, keeping its default."""
    out = {k: v for k, v in prop.items() if k != "anyOf"}
    choices = prop["anyOf"] if "anyOf" in prop else [{k: v for k, v in prop.items() if k != "default"}]
    out.pop("type", None)
    for k in ("exclusiveMinimum", "minimum", "maximum", "exclusiveMaximum"):
        out.pop(k, None)
    out["anyOf"] = [*choices, extra]
    return out


def policy_json_schema() -> dict[str, Any]:
    inner = msgspec.json.schema(CleanroomConfig)
    defs = inner["$defs"]
    for name in ORIGIN_FIELDS:
        defs["CleanroomConfig"]["properties"].pop(name, None)
    for fields, extra in ((SIZE_FIELDS, _SIZE_STRING), (DURATION_FIELDS, _DURATION_STRING)):
        for section, names in fields.items():
            props = defs[_DEF_NAMES[section]]["properties"]
            for n in names:
                props[n] = _also_string(props[n], extra)
    # The loader refuses unknown keys; say so, so editors underline typos too.
    for d in defs.values():
        d["additionalProperties"] = False
    table = copy.deepcopy(defs["CleanroomConfig"])
    # Any other sub-table of [cleanroom] is an environment overlay with the same keys
    # (and no overlays of its own: CleanroomConfig's def forbids extra keys).
    table["additionalProperties"] = {"$ref": "#/$defs/CleanroomConfig"}
    table["description"] = ("The [cleanroom] table. Extra sub-tables such as [cleanroom.dev] are environment "
                            "overlays, chosen with --env or CLEANROOM_ENV and deep-merged over the base.")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "cleanroom policy",
        "type": "object",
        "properties": {"cleanroom": table},
        "additionalProperties": False,
        "$defs": defs,
    }
