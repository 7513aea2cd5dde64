"""Find and remove resources whose owning process is gone (by ownership labels)."""

from __future__ import annotations

import json

import msgspec
from loguru import logger
from podman.errors import NotFound

from sandbox.engine.connection import Connection
from sandbox.engine.ownership import LABEL_MANAGED, LABEL_SINGLETON, owner_alive


class PruneReport(msgspec.Struct):
    containers: list[str] = msgspec.field(default_factory=list)
    networks: list[str] = msgspec.field(default_factory=list)
    cgroups: list[str] = msgspec.field(default_factory=list)
    kept: list[str] = msgspec.field(default_factory=list)


def prune(url: str | None = None, include_live: bool = False) -> PruneReport:
    report = PruneReport()
    conn = Connection(url)
    try:
        api = conn.api()
        filters = json.dumps({"label": [f"{LABEL_MANAGED}=true"]})
        for c in api.get("/containers/json", params={"all": True, "filters": filters}).json() or []:
            labels = c.get("Labels") or {}
            name = (c.get("Names") or [c["Id"][:12]])[0]
            if not include_live and labels.get(LABEL_SINGLETON) and c.get("State") == "running":
                report.kept.append(f"container {name} (running singleton, kept for reuse)")
                continue
            if not include_live and owner_alive(labels):
                report.kept.append(f"container {name} (owner still running)")
                continue
            try:
                api.delete(f"/containers/{c['Id']}", params={"force": True, "v": True, "timeout": 0})
                report.containers.append(name)
            except NotFound:
                pass
        for n in api.get("/networks/json", params={"filters": filters}).json() or []:
            labels = n.get("labels") or n.get("Labels") or {}
            name = n.get("name") or n.get("Name")
            if not include_live and owner_alive(labels):
                report.kept.append(f"network {name} (owner still running)")
                continue
            try:
                api.delete(f"/networks/{name}", params={"force": True})
                report.networks.append(name)
            except NotFound:
                pass
    finally:
        conn.close()
    try:
        from sandbox.confine import prune_cgroups
    except ImportError:
        prune_cgroups = None
    if prune_cgroups is not None:
        report.cgroups.extend(prune_cgroups(include_live=include_live))
    logger.info("prune finished", containers=len(report.containers), networks=len(report.networks),
                cgroups=len(report.cgroups))
    return report
