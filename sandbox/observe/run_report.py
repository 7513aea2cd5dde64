"""The run report's data: one entry per sandbox a test ran, the environment's services
and alerts, whether its audit trail verifies; written as JSON, or as HTML when the
path ends in .html. Everything in it is already redacted: results carry redacted
output (only its digest goes in), names and alert messages pass the redactor."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from sandbox.audit import verify_audit_log
from sandbox.engine.results import RunResult
from sandbox.observe.report_html import render


def sandbox_entry(result: RunResult, started: float, ended: float) -> dict[str, Any]:
    return {"name": result.sandbox, "image": result.image, "exit_code": result.exit_code, "verdict": result.verdict,
            "peak_memory_bytes": result.usage.peak_memory_bytes, "cpu_seconds": result.usage.cpu_seconds,
            "duration_seconds": round(result.duration_seconds, 4), "started": round(started, 4),
            "ended": round(ended, 4), "phases": dict(result.phases), "redactions": dict(result.redactions),
            "breaches": msgspec.to_builtins(result.breaches),
            "timeseries": msgspec.to_builtins(result.timeseries)}


def environment_section(env: Any) -> dict[str, Any]:
    """What the session's environment saw beyond the tests' own sandboxes."""
    services = [e for e in env.get_timeline() if e.get("kind") == "service"]
    return {"id": env.id, "services": services, "alerts": env.get_alerts()}


def audit_verified(env: Any) -> bool | None:
    """Whether the (closed, sealed) audit trail verifies; None without one."""
    path = env.audit_path
    if path is None or not Path(path).exists():
        return None
    key_env = env.config.security_policy.audit_hmac_key_env
    key = os.environ.get(key_env, "").encode() if key_env else None
    try:
        return verify_audit_log(path, key or None).ok
    except OSError:
        return False


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".html", ".htm"):
        out.write_text(render(report), encoding="utf-8")
    else:
        out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return out
