"""The services of one environment: one container per name, reused; singletons shared
across processes and runs when the policy allows; owned ones removed at close."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.engine.launcher import ServiceLauncher
from sandbox.services import singletons


class ServiceRegistry:
    def __init__(self, launcher: ServiceLauncher, record_metric: Callable[[str, float], None]) -> None:
        self._launcher = launcher
        self._record_metric = record_metric
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._by_name: dict[str, Any] = {}
        self._owned: list[Any] = []  # not singletons: removed when the environment closes

    def start(self, container: Any, *, alias: str | None = None) -> Any:
        """Start ``container`` as a service this environment owns."""
        container._prepare(self._launcher)
        container._attach(self._launcher.start(container.definition(), alias=alias))
        with self._lock:
            self._owned.append(container)
        return container

    def get_or_create(self, name: str, factory: Callable[[], Any]) -> Any:
        with self._lock:
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            current = self._by_name.get(name)
            if current is not None and current.is_running():
                self._record_metric("containers.reused", 1)
                current.reused = True
                return current
            if self._launcher.config.enable_singleton_containers:
                container = singletons.get_or_create(self._launcher, name, factory, self._record_metric)
            else:
                container = self._start_owned(name, factory)
            self._by_name[name] = container
            return container

    def _start_owned(self, name: str, factory: Callable[[], Any]) -> Any:
        container = self.start(factory(), alias=name)
        try:
            container.wait_for_ready()
        except BaseException:
            with self._lock:
                self._owned.remove(container)
            try:
                container.stop()
            except Exception as exc:  # keep the readiness error, not this one
                logger.warning("could not remove a failed service (prune removes it)", error=str(exc))
            raise
        self._record_metric("containers.created", 1)
        return container

    def shared(self) -> list[tuple[str, str, int]]:
        """The singletons this environment uses, made or adopted: (name, container, pid) each."""
        with self._lock:
            owned = list(self._owned)
        return [(name, c.service.name, c.service.handle.pid) for name, c in list(self._by_name.items())
                if c.service is not None and not c.service.removed and not any(c is o for o in owned)]

    def kept_ids(self) -> list[str]:
        """Containers that outlive the environment (running singletons it used)."""
        return [c.service.id for c in self._by_name.values() if c.service is not None and not c.service.removed]

    def close(self) -> None:
        with self._lock:
            owned, self._owned = self._owned, []
            kept = [c for c in self._by_name.values() if c not in owned]
        for container in kept:  # singletons stay running: only what this process holds goes
            try:
                container.release()
            except Exception as exc:  # keep going: the rest must still be released
                logger.warning("service release failed", error=str(exc))
        for container in reversed(owned):
            try:
                container.stop()
            except Exception as exc:  # keep going: the rest must still be removed
                logger.warning("service removal failed", error=str(exc))
