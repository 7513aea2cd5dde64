"""The private network of one environment: its services and sandboxes reach each
other by name there, and nothing outside the environment is on it."""

from __future__ import annotations

import json
import threading
from typing import Any

from loguru import logger
from podman.errors import APIError, NotFound

_JSON = {"content-type": "application/json"}


SHARED_NETWORK = "cleanroom-shared"


def ensure_shared_network(connection: Any) -> str:
    """The primary network of singletons, which outlive any one environment.

    A container's published ports follow its first network; were that an
    environment's network, closing the environment would cut every other user of the
    singleton off. Environments attach singletons to their own network as well.
    """
    try:
        connection.api().post("/networks/create", headers=_JSON, data=json.dumps(
            {"name": SHARED_NETWORK, "dns_enabled": True, "labels": {"io.cleanroom.shared": "true"}}))
    except APIError as exc:
        if "already" not in str(exc).lower() and "exists" not in str(exc).lower():
            raise
    return SHARED_NETWORK


class EnvironmentNetwork:
    """Created on first use, labelled like every sandbox (so prune finds orphans)."""

    def __init__(self, connection: Any, env_id: str, labels: dict[str, str]) -> None:
        self.connection = connection
        self.name = f"cleanroom-{env_id}"
        self._labels = labels
        self._lock = threading.Lock()
        self.created = False

    def ensure(self) -> str:
        with self._lock:
            if not self.created:
                # dns_enabled: the API's default is off (the CLI's is on); names are the point.
                self.connection.api().post("/networks/create", headers=_JSON, data=json.dumps(
                    {"name": self.name, "labels": self._labels, "dns_enabled": True}))
                self.created = True
        return self.name

    def connect(self, container_id: str, aliases: list[str]) -> None:
        """Attach a container made elsewhere (a reused singleton) under these names."""
        self.ensure()
        try:
            self.connection.api().post(f"/networks/{self.name}/connect", headers=_JSON,
                                       data=json.dumps({"container": container_id, "aliases": aliases}))
        except APIError as exc:
            if "already" not in str(exc).lower():
                raise

    def disconnect(self, container_id: str) -> None:
        try:
            self.connection.api().post(f"/networks/{self.name}/disconnect", headers=_JSON,
                                       data=json.dumps({"container": container_id}))
        except (APIError, NotFound):
            pass

    def remove(self, keep: list[str]) -> None:
        """Detach containers that outlive the environment, then delete the network.

        Never with force: Podman's force removes the containers still attached.
        """
        if not self.created:
            return
        for cid in keep:
            self.disconnect(cid)
        try:
            self.connection.api().delete(f"/networks/{self.name}")
        except NotFound:
            pass
        except APIError as exc:
            logger.warning("environment network left behind (prune removes it)", network=self.name, error=str(exc))
        self.created = False
