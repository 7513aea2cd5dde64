"""A JSON Schema of the policy file, for editors (taplo / Even Better TOML)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from sandbox.policy.model import ORIGIN_FIELDS, SIZE_FIELDS, DURATION_FIELDS, CleanroomConfig

_SIZE_STRING = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP]i?)?[bB]?\s*$"}
_DURATION_STRING = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"}
_DEF_NAMES = {
    "": "CleanroomConfig",
    "resource_limits": "ResourceLimits",
    "resource_limits.sandbox": "SandboxLimits",
    "performance_monitoring": "PerformanceMonitoring",
    "performance_monitoring.thresholds": "Thresholds",
}


def policy_json_schema() -> dict[str, Any]:
    inner = msgspec.json.schema(CleanroomConfig)
    defs = inner["$defs"]
    for name in ORIGIN_FIELDS:
        defs["CleanroomConfig"]["properties"].pop(name, None)
    for fields, extra in ((SIZE_FIELDS, _SIZE_STRING), (DURATION_FIELDS, _DURATION_STRING)):
        for section, names in fields.items():
            props = defs[_DEF_NAMES[section]]["properties"]
            for n in names:
                props[n] = {"anyOf": [props[n], extra]}
    table = copy.deepcopy(defs["CleanroomConfig"])
    # Any other sub-table of [cleanroom] is an environment overlay with the same keys.
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
