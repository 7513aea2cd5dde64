"""CleanroomEnvironment: the user-facing handle on a set of confined sandboxes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from sandbox.engine import cleanup
from sandbox.engine.connection import Connection
from sandbox.engine.lifecycle import SandboxRunner
from sandbox.engine.networks import EnvironmentNetwork
from sandbox.engine.ownership import owner_labels
from sandbox.engine.results import RunResult
from sandbox.errors import CleanroomError, ResourceLimitExceeded
from sandbox.policy import CleanroomConfig
from sandbox.services.environment_api import ServicesMixin


def default_audit_dir(config: CleanroomConfig) -> Path:
    explicit = os.environ.get("CLEANROOM_AUDIT_DIR") or config.security_policy.audit_log_dir
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cleanroom" / "audit"


class CleanroomEnvironment(ServicesMixin):
    """A policy, a Podman connection, a redactor and an audit log, for one session.

    Use it as a context manager: everything it made is removed on exit, whether the
    block returned, raised, or the process got SIGTERM.
    """

    def __init__(
        self,
        config: CleanroomConfig | None = None,
        *,
        url: str | None = None,
        name: str | None = None,
        audit_dir: str | os.PathLike[str] | None = None,
        confine: bool = True,
    ) -> None:
        self.config = config if config is not None else CleanroomConfig.default()
        self.id = name or f"env-{uuid.uuid4().hex[:12]}"
        self._url = url
        self._audit_dir = Path(audit_dir) if audit_dir else default_audit_dir(self.config)
        self._confine = confine
        self._opened = False
        self.connection: Connection | None = None
        self.runner: SandboxRunner | None = None
        self.network: EnvironmentNetwork | None = None
        self.redactor: Any = None
        self.audit_log: Any = None
        self.audit_path: Path | None = None
        self._metrics: dict[str, list[float]] = {}
        self._closers: list[Callable[[], None]] = []
        self._init_services()

    # -- lifecycle ----------------------------------------------------------------
    def open(self) -> CleanroomEnvironment:
        if self._opened:
            return self
        try:
            return self._open()
        except BaseException:
            # Whatever was made before the failure (audit file, cgroups) goes again.
            self._opened = True
            self.close()
            raise

    def _open(self) -> CleanroomEnvironment:
        from sandbox.audit import AuditLog
        from sandbox.redact import Redactor, install_log_redaction

        self.redactor = Redactor.from_policy(self.config.security_policy)
        install_log_redaction()
        self.connection = Connection(self._url)
        if self.config.security_policy.enable_audit_logging:
            self._audit_dir.mkdir(parents=True, exist_ok=True)
            self.audit_log = AuditLog.for_policy(
                self.config.security_policy, self._audit_dir, self.id, self.redactor
            )
            self.audit_path = Path(self.audit_log.path)
        confiners = self._make_confiners() if self._confine else []
        self.network = EnvironmentNetwork(self.connection, self.id, owner_labels(self.id, "network"))
        self.runner = SandboxRunner(
            self.connection,
            self.config,
            environment_id=self.id,
            redactor=self.redactor,
            audit=self._audit,
            confiners=confiners,
            labels=lambda kind, name: owner_labels(self.id, kind, name),
        )
        self._opened = True
        self._audit("environment.opened", "Minimal", environment=self.id,
                    policy_file=self.config.source_file, policy_env=self.config.environment)
        self._audit("policy.applied", "Medium", digest=self.config.digest())
        logger.info("environment opened", environment=self.id, engine=self.connection.url)
        return self

    def _make_confiners(self) -> list[Any]:
        try:
            from sandbox.confine import confiners_for
        except ImportError:
            return []
        made = confiners_for(self)
        for c in made:
            closer = getattr(c, "close", None)
            if closer is not None:
                self._closers.append(closer)
        return made

    def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        # Containers first: their cgroups can only go once no process is left in them.
        self._close_services()
        cleanup.run_all(owner=self.id)
        if self.network is not None:
            # Reused singletons stay running for the next run: detach them, then the
            # network goes (never forced: force would remove them too).
            self.network.remove(keep=[c.service.id for c in self._services.values()
                                      if c.service is not None and not c.service.removed])
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:
                logger.warning("environment cleanup step failed", error=str(exc))
        self._closers.clear()
        self._audit("environment.closed", "Minimal", environment=self.id)
        if self.audit_log is not None:
            self.audit_log.close()
        if self.connection is not None:
            self.connection.close()
        logger.info("environment closed", environment=self.id)

    def __enter__(self) -> CleanroomEnvironment:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------
    def _audit(self, event: str, min_level: str = "Minimal", **data: Any) -> None:
        self._remember(event, data)
        if self.audit_log is not None:
            self.audit_log.record(event, min_level, **data)

    def _require_open(self) -> SandboxRunner:
        if self.runner is None or not self._opened:
            raise CleanroomError("the environment is not open: use `with CleanroomEnvironment(config) as env:`")
        return self.runner

    def add_secret(self, value: str, name: str = "secret") -> None:
        """Mask this exact value (and its common encodings) in everything cleanroom emits."""
        if self.redactor is None:
            self.open()
        self.redactor.add_secret(value, name)

    # -- sandboxes ----------------------------------------------------------------
    def run(
        self,
        image: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        on_stdout: Callable[[str], None] | None = None,
        on_stderr: Callable[[str], None] | None = None,
        limits: dict[str, Any] | None = None,
        check: bool = False,
        network: str | None = None,
    ) -> RunResult:
        """Run ``command`` in one confined sandbox and return its redacted result.

        ``check=True`` raises ``ResourceLimitExceeded`` when a limit was hit.
        A timeout always raises ``TimeoutExceeded``. ``network="env"`` puts the
        sandbox on the environment's private network, where its services answer by
        name (the policy's blocked routes still apply inside).
        """
        runner = self._require_open()
        net = (self.network.ensure(), []) if network == "env" else network
        result = runner.run(image, command, env=env, timeout=timeout, on_stdout=on_stdout,
                            on_stderr=on_stderr, limits=limits, network=net)
        self.record_metric("sandbox.duration_seconds", result.duration_seconds)
        if result.usage.peak_memory_bytes is not None:
            self.record_metric("sandbox.peak_memory_bytes", result.usage.peak_memory_bytes)
        if result.usage.cpu_seconds is not None:
            self.record_metric("sandbox.cpu_seconds", result.usage.cpu_seconds)
        if check and result.breaches:
            b = result.breaches[0]
            raise ResourceLimitExceeded(b.limit, b.limit_value, b.observed, result.sandbox, b.detail)
        return result

    # -- metrics ------------------------------------------------------------------
    def record_metric(self, name: str, value: float) -> None:
        self._metrics.setdefault(name, []).append(float(value))

    def _cgroups(self) -> Any:
        if self.runner is None:
            return None
        return next((c for c in self.runner.confiners if hasattr(c, "report")), None)

    def get_metrics(self) -> dict[str, Any]:
        """Recorded metrics plus the environment's resource peaks."""
        custom: dict[str, Any] = {}
        for name, values in self._metrics.items():
            custom[name] = {"count": len(values), "last": values[-1], "max": max(values), "sum": sum(values)}
        usage: dict[str, Any] = {"peak_cpu_usage_percent": None, "peak_memory_usage_bytes": None}
        cg = self._cgroups()
        if cg is not None:
            report = cg.report()
            usage = {"peak_cpu_usage_percent": report["cpu_percent"]["peak"],
                     "peak_memory_usage_bytes": report["memory_bytes"]["peak"],
                     "cpu_seconds": report["cpu_seconds"]}
        return {"resource_usage": usage, "custom": custom, "timestamp": time.time()}

    def check_resource_limits(self) -> dict[str, Any]:
        """Current use against each budget; raises ResourceLimitExceeded when one is over."""
        self._require_open()
        cg = self._cgroups()
        if cg is None:
            raise CleanroomError("resource limits are not enforced in this environment (no cgroup confiner)")
        report = cg.report()
        checks = (("containers", report["containers"]["used"], report["containers"]["limit"]),
                  ("memory", report["memory_bytes"]["used"], report["memory_bytes"]["limit"]))
        for limit, used, allowed in checks:
            if used > allowed:
                self._audit("limit.breach", "High", limit=limit, limit_value=allowed, observed=used)
                raise ResourceLimitExceeded(limit, allowed, used, None, "environment budget")
        return report
