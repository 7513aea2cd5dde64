"""The private network of one environment: its services and sandboxes reach each
other by name there, and nothing outside the environment is on it."""

from __future__ import annotations

import threading

from loguru import logger

from sandbox.engine.podman.api import PodmanAPI
from sandbox.errors import CleanroomError

SHARED_NETWORK = "cleanroom-shared"


def ensure_shared_network(api: PodmanAPI) -> str:
    """The primary network of singletons, which outlive any one environment.

    A container's published ports follow its first network; were that an
    environment's network, closing the environment would cut every other user of the
    singleton off. Environments attach singletons to their own network as well.
    """
    api.create_network(SHARED_NETWORK, labels={"io.cleanroom.shared": "true"}, exist_ok=True)
    return SHARED_NETWORK


class EnvironmentNetwork:
    """Created on first use, labelled like every sandbox (so prune finds orphans).

    Containers made elsewhere (reused singletons) are attached when the network is
    first needed, not when they are adopted: most environments never put a sandbox on
    their network, and then neither the attach (~50 ms each) nor the network's removal
    at close (~0.5 s) is paid.
    """

    def __init__(self, api: PodmanAPI, env_id: str, labels: dict[str, str]) -> None:
        self._api = api
        self.name = f"cleanroom-{env_id}"
        self._labels = labels
        self._lock = threading.Lock()
        self._pending: dict[str, list[str]] = {}  # container id -> aliases, attached by ensure()
        self.created = False

    def ensure(self) -> str:
        with self._lock:
            if not self.created:
                self._api.create_network(self.name, labels=self._labels)
                self.created = True
            pending, self._pending = self._pending, {}
            for cid, aliases in pending.items():
                try:
                    self._api.connect_network(self.name, cid, aliases)
                except CleanroomError as exc:  # gone since it was adopted: nothing to reach by that name
                    logger.warning("a service could not join the environment network", container=cid[:12],
                                   aliases=aliases, error=str(exc))
        return self.name

    def connect(self, container_id: str, aliases: list[str]) -> None:
        """Attach a container made elsewhere (a reused singleton) under these names, when
        the network is first needed (at once if it exists already)."""
        with self._lock:
            self._pending[container_id] = list(aliases)
            created = self.created
        if created:
            self.ensure()

    def remove(self, keep: list[str]) -> None:
        """Detach containers that outlive the environment, then delete the network.

        Never with force: Podman's force removes the containers still attached.
        """
        if not self.created:
            return
        for cid in keep:
            try:
                self._api.disconnect_network(self.name, cid)
            except CleanroomError as exc:  # already gone or detached: nothing to keep off it
                logger.debug("disconnect before network removal", error=str(exc))
        try:
            self._api.remove_network(self.name)
        except CleanroomError as exc:
            logger.warning("environment network left behind (prune removes it)", network=self.name, error=str(exc))
        self.created = False
