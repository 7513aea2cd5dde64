"""Who owns a sandbox: labels written at create time and read back by prune.

A PID alone is not an identity (PIDs are reused), so the owner is the PID plus
the process start time as the kernel reports it; prune treats a sandbox as
orphaned when no live process has that pair.
"""

from __future__ import annotations

import os
import socket

import psutil

LABEL_MANAGED = "io.cleanroom.managed"
LABEL_ENV = "io.cleanroom.environment"
LABEL_OWNER_PID = "io.cleanroom.owner-pid"
LABEL_OWNER_START = "io.cleanroom.owner-start"
LABEL_OWNER_HOST = "io.cleanroom.owner-host"
LABEL_KIND = "io.cleanroom.kind"
LABEL_NAME = "io.cleanroom.name"
LABEL_SINGLETON = "io.cleanroom.singleton"
LABEL_POOL = "io.cleanroom.pool"  # a warm pool member (its value: the options it was made for)


def _start_time(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return ""


def owner_labels(environment_id: str, kind: str, name: str | None = None) -> dict[str, str]:
    pid = os.getpid()
    labels = {
        LABEL_MANAGED: "true",
        LABEL_ENV: environment_id,
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_START: _start_time(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_KIND: kind,
    }
    if name:
        labels[LABEL_NAME] = name
    return labels


def owner_alive(labels: dict[str, str]) -> bool:
    """True while the process that made these labels still runs on this host."""
    if labels.get(LABEL_OWNER_HOST) not in (None, socket.gethostname()):
        return True  # another host's sandbox: never ours to judge
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    if not psutil.pid_exists(pid):
        return False
    want = labels.get(LABEL_OWNER_START, "")
    return not want or _start_time(pid) == want
