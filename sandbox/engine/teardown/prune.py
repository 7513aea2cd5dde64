"""Find and remove resources whose owning process is gone (by ownership labels)."""

from __future__ import annotations

import msgspec
from loguru import logger

from sandbox.confine import prune_cgroups
from sandbox.engine.podman.libpod import LibpodAPI
from sandbox.engine.teardown.ownership import LABEL_MANAGED, LABEL_SINGLETON, owner_alive


class PruneReport(msgspec.Struct):
    containers: list[str] = msgspec.field(default_factory=list)
    networks: list[str] = msgspec.field(default_factory=list)
    cgroups: list[str] = msgspec.field(default_factory=list)
    kept: list[str] = msgspec.field(default_factory=list)


def prune(url: str | None = None, include_live: bool = False) -> PruneReport:
    report = PruneReport()
    api = LibpodAPI(url)
    managed = [f"{LABEL_MANAGED}=true"]
    try:
        for c in api.list_containers(labels=managed):
            if not include_live and c.labels.get(LABEL_SINGLETON) and c.state == "running":
                report.kept.append(f"container {c.name} (running singleton, kept for reuse)")
                continue
            if not include_live and owner_alive(c.labels):
                report.kept.append(f"container {c.name} (owner still running)")
                continue
            api.remove_container(c.id)
            report.containers.append(c.name)
        for n in api.list_networks(labels=managed):
            if not include_live and owner_alive(n.labels):
                report.kept.append(f"network {n.name} (owner still running)")
                continue
            api.remove_network(n.name, force=True)
            report.networks.append(n.name)
    finally:
        api.close()
    report.cgroups.extend(prune_cgroups(include_live=include_live))
    logger.info("prune finished", containers=len(report.containers), networks=len(report.networks),
                cgroups=len(report.cgroups))
    return report
