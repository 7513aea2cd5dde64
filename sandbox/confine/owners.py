"""Who made each environment cgroup: a small record per environment (pid, parent pid,
start time) under $XDG_RUNTIME_DIR, so prune can tell a live environment from debris."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import psutil


def records_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/cleanroom-{os.getuid()}"
    return Path(runtime) / "cleanroom" / "cgroups"


def write_owner_record(env_id: str) -> Path:
    d = records_dir()
    d.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    path = d / f"{env_id}.json"
    # ppid lets a test (or a supervisor) find what its own children left behind,
    # without mistaking another run's live environments for leftovers.
    path.write_text(json.dumps({"pid": me.pid, "ppid": os.getppid(), "start": round(me.create_time(), 2)}))
    return path


def owner_record(env_id: str) -> dict[str, Any]:
    """{"pid", "ppid", "start"} of the process that made env_id's cgroup, or {} if unknown."""
    try:
        rec = json.loads((records_dir() / f"{env_id}.json").read_text())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def owner_alive(env_id: str) -> bool:
    rec = owner_record(env_id)
    try:
        proc = psutil.Process(rec["pid"])
        return round(proc.create_time(), 2) == rec["start"]
    except (KeyError, TypeError, psutil.Error):
        return False


def prune_records(live_env_ids: set[str]) -> list[str]:
    """Drop ownership records of environments whose cgroup is gone and whose owner died."""
    dropped = []
    try:
        paths = list(records_dir().glob("*.json"))
    except OSError:
        return dropped
    for path in paths:
        env_id = path.stem
        if env_id in live_env_ids or owner_alive(env_id):
            continue
        path.unlink(missing_ok=True)
        dropped.append(env_id)
    return dropped
