"""Podman's JSON answers → the engine's typed values (inspect records, messages)."""

from __future__ import annotations

import json
from typing import Any

from sandbox.engine.podman.api import ContainerInfo, ContainerState
from sandbox.engine.posture import posture_from_inspect


def runtime_exit_code(message: str) -> int | None:
    """The shell's convention, as `podman run` reports it: 127 not found, 126 not executable."""
    low = message.lower()
    if "not found" in low or "no such file" in low:
        return 127
    if "permission denied" in low:
        return 126
    return None


def podman_message(exc: Exception) -> str:
    msg = getattr(exc, "explanation", None) or str(exc)
    return str(msg).splitlines()[0][:500] if str(msg) else type(exc).__name__


def runtime_spec(data: dict[str, Any]) -> dict[str, Any] | None:
    """The OCI runtime spec Podman wrote for the runtime: exactly what will run. The
    rootless service and the engine share a user, so the file is readable here."""
    path = data.get("OCIConfigPath")
    if not isinstance(path, str):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            spec = json.load(fh)
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def container_info(data: dict[str, Any], posture: bool = False) -> ContainerInfo:
    state = data.get("State") or {}
    exit_code = state.get("ExitCode")
    return ContainerInfo(
        id=data["Id"], name=str(data.get("Name", "")).lstrip("/"),
        state=ContainerState(status=str(state.get("Status", "unknown")), running=bool(state.get("Running")),
                             pid=int(state.get("Pid") or 0), exit_code=None if exit_code is None else int(exit_code),
                             error=str(state.get("Error") or "")),
        labels=dict((data.get("Config") or {}).get("Labels") or {}),
        ports=host_ports(data),
        posture=posture_from_inspect(data, runtime_spec(data)) if posture else None,
    )


def host_ports(data: dict[str, Any]) -> dict[int, int]:
    out: dict[int, int] = {}
    ports = ((data.get("NetworkSettings") or {}).get("Ports")) or {}
    for key, bindings in ports.items():
        for b in bindings or []:
            if b.get("HostPort"):
                out[int(str(key).split("/")[0])] = int(b["HostPort"])
                break
    return out
