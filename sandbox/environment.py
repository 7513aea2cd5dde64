"""CleanroomEnvironment: the user-facing handle on a set of confined sandboxes."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from sandbox.audit import AuditLog
from sandbox.audit.recent import RecentEvents
from sandbox.confine import CgroupConfiner, confiners_for
from sandbox.engine.attachment import Attachment, attach, refuse_unsafe
from sandbox.engine.images import Images, PullProgress
from sandbox.engine.launcher import ServiceLauncher
from sandbox.engine.mounts import engine_sockets
from sandbox.engine.networks import EnvironmentNetwork
from sandbox.engine.output import redact_again
from sandbox.engine.podman.api import StdinSource
from sandbox.engine.podman.libpod import LibpodAPI
from sandbox.engine.pool import SandboxPool
from sandbox.engine.results import RunResult
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.session.session import Session
from sandbox.engine.teardown import cleanup
from sandbox.engine.teardown.ownership import owner_labels
from sandbox.engine.types import Confiner, CreateRequest, Mount, NetworkAttachment
from sandbox.environment_metrics import Metrics
from sandbox.errors import CleanroomError, ResourceLimitExceeded
from sandbox.observe import Observability, ObservabilityMethods
from sandbox.policy import CleanroomConfig
from sandbox.policy.compliance import controls_snapshot, require_controls
from sandbox.redact import Redactor, install_log_redaction
from sandbox.services.registry import ServiceRegistry
from sandbox.testing.execute import TestExecutor, TestOutcome, TestSandboxes, as_test


def default_audit_dir(config: CleanroomConfig) -> Path:
    explicit = os.environ.get("CLEANROOM_AUDIT_DIR") or config.security_policy.audit_log_dir
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cleanroom" / "audit"


class CleanroomEnvironment(ObservabilityMethods):
    """A policy, a Podman connection, a redactor and an audit log, for one session.

    Use it as a context manager: everything it made is removed on exit, whether the
    block returned, raised, or the process got SIGTERM.
    """

    def __init__(self, config: CleanroomConfig | None = None, *, url: str | None = None, name: str | None = None,
                 audit_dir: str | os.PathLike[str] | None = None, confine: bool = True) -> None:
        self.config = config if config is not None else CleanroomConfig.default()
        self.id = name or f"env-{uuid.uuid4().hex[:12]}"
        self._url = url
        self._audit_dir = Path(audit_dir) if audit_dir else default_audit_dir(self.config)
        self._confine = confine
        self._opened = False
        self._redactor = Redactor.from_policy(self.config.security_policy)
        self._events = RecentEvents(self._redactor.redact)
        self._metrics = Metrics()
        self._api: LibpodAPI | None = None
        self._audit_log: AuditLog | None = None
        self._confiners: list[Confiner] = []
        self._runner: SandboxRunner | None = None
        self._network: EnvironmentNetwork | None = None
        self._services: ServiceRegistry | None = None
        self._images: Images | None = None
        # Called with a PullProgress while a missing image is pulled (the CLI draws a bar).
        self.pull_progress: Callable[[PullProgress], None] | None = None
        self._test_sandboxes = TestSandboxes(self._kill_sandbox)
        # Set by cleanroom's own code only (_attach_to_sandboxes): added to every sandbox request.
        self._attachment: tuple[Attachment, Callable[[CreateRequest], None] | None] | None = None
        self._tests = TestExecutor(self._events, self._audit, self._redactor.redact, self.record_metric,
                                   self._test_sandboxes)
        self._observe = Observability(self.id, self.config, redact=self._redactor.redact, audit=self._audit,
                                      custom=self._metrics.summary)

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
        require_controls(self.config)  # before anything is made: a standard's promise holds or nothing runs
        install_log_redaction()
        self._api = LibpodAPI(self._url, redact=self._redactor.redact, on_restart=self._engine_restarted,
                              timeout=max(60.0, float(self.config.container_startup_timeout)))
        if self.config.security_policy.enable_audit_logging:
            # AuditLog makes the directory itself; an unwritable one is an AuditError.
            self._audit_log = AuditLog.for_policy(self.config.security_policy, self._audit_dir, self.id,
                                                  self._redactor)
        unconfined = None
        if self._confine:
            self._confiners = confiners_for(self.config, self.id, self._audit, size_of=self._api.container_size,
                                            kill=self._api.kill_container)
            if not any(isinstance(c, CgroupConfiner) for c in self._confiners):
                unconfined = "security_policy.allow_unconfined: this host cannot enforce cgroup limits"
        else:
            unconfined = "CleanroomEnvironment(confine=False)"
            self._audit("environment.unconfined", "Minimal", reason=unconfined)
        self._network = EnvironmentNetwork(self._api, self.id, owner_labels(self.id, "network"))
        self._images = Images(self._api, self.config, self._audit, self._redactor.redact)
        self._runner = SandboxRunner(self._api, self.config, environment_id=self.id, redactor=self._redactor,
                                     audit=self._audit, confiners=self._confiners,
                                     labels=lambda kind, name: owner_labels(self.id, kind, name),
                                     unconfined=unconfined)
        self._runner.images = self._images
        self._services = ServiceRegistry(ServiceLauncher(self._runner, self._network, self.add_secret),
                                         self.record_metric)
        if self.config.pool.size:
            self._start_pool()
        self._opened = True
        self._observe.open(self._runner, self._confiners, self._api.ping)
        self._audit("environment.opened", "Minimal", environment=self.id,
                    policy_file=self.config.source_file, policy_env=self.config.environment)
        self._audit("policy.applied", "Medium", digest=self.config.digest(), controls=controls_snapshot(self.config))
        logger.info("environment opened", environment=self.id, engine=self._api.url)
        return self

    def _start_pool(self) -> None:
        # A member and one more place for the caller's own sandboxes and services.
        budget = next((c for c in self._confiners if isinstance(c, CgroupConfiner)), None)
        pool = SandboxPool(self._runner, self.config.pool.size, room=lambda: budget is None or budget.room_for(2),
                           prepare=lambda image: self.images.ensure(image, None))
        self._runner.pool = pool
        for image in self.config.pool.images:
            pool.want(self._runner.request(image))

    def close(self) -> None:
        """Remove everything this environment made, within resource_limits.resource_cleanup_timeout;
        what is not removed by then is named in an error (log and audit) and left for
        `cleanroom prune` (the removal goes on in the background while this process lives)."""
        if not self._opened:
            return
        self._opened = False
        self._tests.close()
        limit = float(self.config.resource_limits.resource_cleanup_timeout)
        remover = threading.Thread(target=self._remove_everything, name=f"cleanroom-close-{self.id}", daemon=True)
        remover.start()
        remover.join(limit)
        late = remover.is_alive()
        if late:
            left = cleanup.pending(self.id) or ["the environment's network and cgroups (removal still running)"]
            logger.error("environment cleanup exceeded resource_cleanup_timeout; left for `cleanroom prune`",
                         environment=self.id, limit_seconds=limit, left=left)
            self._audit("environment.cleanup_timeout", "Minimal", limit_seconds=limit, left=left)
        try:
            self._audit("environment.closed", "Minimal", environment=self.id)
        finally:
            # A trail that cannot be written raises on every record; it still gets closed
            # (left unsealed, so verify says so), and so does the connection (unless the
            # removal still uses it).
            try:
                if self._audit_log is not None:
                    self._audit_log.close()
            finally:
                if self._api is not None and not late:
                    self._api.close()
        logger.info("environment closed", environment=self.id)

    def _remove_everything(self) -> None:
        # Containers first: their cgroups can only go once no process is left in them.
        if self._runner is not None:
            if self._runner.pool is not None:
                self._runner.pool.close()
            self._runner.drain()  # removals of finished sandboxes still under way
        if self._services is not None:
            self._services.close()
        cleanup.run_all(owner=self.id)
        if self._network is not None:
            # Reused singletons stay running for the next run: detach them, then the
            # network goes (never forced: force would remove them too).
            self._network.remove(keep=self._services.kept_ids() if self._services is not None else [])
        self._observe.close()  # servers stop; the last samples, alerts and spans go out
        for confiner in reversed(self._confiners):
            try:
                confiner.close()
            except Exception as exc:
                logger.warning("environment cleanup step failed", error=str(exc))
        self._confiners = []

    def __enter__(self) -> CleanroomEnvironment:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what it is made of ----------------------------------------------------------
    @property
    def audit_path(self) -> Path | None:
        """The audit log file, or None when audit logging is off."""
        return Path(self._audit_log.path) if self._audit_log is not None else None

    @property
    def audit_head(self) -> str | None:
        """The audit chain's newest hash: kept elsewhere, it anchors the chain
        (`cleanroom audit verify FILE --head HASH`)."""
        return self._audit_log.head if self._audit_log is not None else None

    @property
    def images(self) -> Images:
        """Pull (``images.pull(ref, progress=cb)``) and build (``images.build(dir, tag=...)``)."""
        self._require_open()
        assert self._images is not None
        return self._images

    @property
    def services(self) -> ServiceRegistry:
        self._require_open()
        assert self._services is not None
        return self._services

    def _engine_restarted(self, url: str, pid: int, during: str) -> None:
        self._audit("engine.restarted", "Minimal", url=url, pid=pid, during=during)

    def _audit(self, event: str, min_level: str = "Minimal", **data: Any) -> None:
        self._events.remember(event, data)
        self._observe.event(event, data)
        if self._audit_log is not None:
            self._audit_log.record(event, min_level, **data)

    def _require_open(self) -> SandboxRunner:
        if self._runner is None or not self._opened:
            raise CleanroomError("the environment is not open: use `with CleanroomEnvironment(config) as env:`")
        return self._runner

    def add_secret(self, value: str, name: str = "secret") -> None:
        """Mask this exact value (and its common encodings) in everything cleanroom emits."""
        self._redactor.add_secret(value, name)

    def redact(self, text: str) -> str:
        """``text`` as this environment's redactor masks it (for what tests write, e.g. snapshots);
        markers already in it stay as they are."""
        return redact_again(self._redactor, text)

    # -- sandboxes ----------------------------------------------------------------
    def run(self, image: str, command: list[str], *, env: dict[str, str] | None = None,
            timeout: float | None = None, on_stdout: Callable[[str], None] | None = None,
            on_stderr: Callable[[str], None] | None = None, limits: dict[str, Any] | None = None,
            check: bool = False, network: str | None = None, mounts: list[Mount] | None = None,
            workdir: str | None = None, user: str | None = None, stdin: StdinSource | None = None) -> RunResult:
        """Run ``command`` in one confined sandbox and return its redacted result.

        ``mounts`` bind host paths in (read-only unless ``Mount(..., read_only=False)``
        and the policy allows it; refused before anything is created otherwise);
        ``workdir`` and ``user`` set where and as whom the command runs; ``stdin``
        (bytes or a binary file) is fed to it, then end of file.

        ``check=True`` raises ``ResourceLimitExceeded`` when a limit was hit.
        A timeout always raises ``TimeoutExceeded``. ``network="env"`` puts the
        sandbox on the environment's private network, where its services answer by
        name (the policy's blocked routes still apply inside).
        """
        runner = self._require_open()
        self.images.ensure(image, self.pull_progress)
        net = NetworkAttachment(self._network.ensure()) if network == "env" else network
        request = self._attached(runner.request(image, command, env=dict(env or {}), limits=dict(limits or {}),
                                                network=net, mounts=list(mounts or []), workdir=workdir, user=user,
                                                stdin=stdin is not None))
        self._test_sandboxes.started(request.name)
        try:
            result = self._observe.run(request.name, lambda: runner.run(request, timeout=timeout, on_stdout=on_stdout,
                                                                        on_stderr=on_stderr, stdin=stdin))
        finally:
            self._test_sandboxes.ended(request.name)
        self.record_metric("sandbox.duration_seconds", result.duration_seconds)
        if result.usage.peak_memory_bytes is not None:
            self.record_metric("sandbox.peak_memory_bytes", result.usage.peak_memory_bytes)
        if result.usage.cpu_seconds is not None:
            self.record_metric("sandbox.cpu_seconds", result.usage.cpu_seconds)
        if check and result.breaches:
            b = result.breaches[0]
            raise ResourceLimitExceeded(b.limit, b.limit_value, b.observed, result.sandbox, b.detail)
        return result

    def session(self, image: str, *, mounts: list[Mount] | None = None, workdir: str | None = None,
                user: str | None = None, env: dict[str, str] | None = None, limits: dict[str, Any] | None = None,
                network: str | None = None, timeout: float | None = None) -> Session:
        """A long-lived confined sandbox: ``with env.session(image, mounts=[...]) as sb:``
        then ``sb.exec(...)``, ``sb.write_file``/``read_file``, ``sb.copy_in``/``copy_out``.
        Same limits, network rules, redaction and audit as ``run``; ``timeout`` (default
        test_execution_timeout) bounds the whole session."""
        runner = self._require_open()
        self.images.ensure(image, self.pull_progress)
        net = NetworkAttachment(self._network.ensure()) if network == "env" else network
        request = self._attached(runner.request(image, None, kind="sandbox", env=dict(env or {}),
                                                limits=dict(limits or {}), network=net, mounts=list(mounts or []),
                                                workdir=workdir))
        return Session(runner, request, timeout=timeout, user=user)

    def _attach_to_sandboxes(self, attachment: Attachment | None,
                             on_sandbox: Callable[[CreateRequest], None] | None = None) -> None:
        """Internal (the pytest plugin's coverage): ``attachment``'s variables and mounts go into
        every sandbox this environment runs from now on (None: no longer); ``on_sandbox`` is told
        each request. Not for user mounts: those go through ``mounts=`` and the policy."""
        if attachment is not None:
            refuse_unsafe(attachment, engine_sockets(self._require_open().api.url))
        self._attachment = (attachment, on_sandbox) if attachment is not None else None

    def _attached(self, request: CreateRequest) -> CreateRequest:
        if self._attachment is None:
            return request
        attachment, on_sandbox = self._attachment
        request, added = attach(request, attachment)
        self._audit("sandbox.attached", "Medium", sandbox=request.name, attachment=attachment.name,
                    env=sorted(attachment.env), mounts=msgspec.to_builtins(added))
        if on_sandbox is not None:
            on_sandbox(request)
        return request

    # -- services and tests ------------------------------------------------------------
    def get_or_create_container(self, name: str, factory: Callable[[], Any]) -> Any:
        """Create once and reuse: a ready, healthy service container named ``name``.

        With ``enable_singleton_containers`` the container is shared by every test,
        xdist worker and later run on this host; otherwise each call makes its own,
        removed when the environment closes.
        """
        return self.services.get_or_create(name, factory)

    def execute_test(self, name: str, fn: Callable[[], Any], timeout: float | None = None) -> TestOutcome:
        """Run ``fn`` as a named test within resource_limits.max_test_execution_time (the
        per-test wall clock; test_execution_timeout bounds each sandbox).

        Safe to call from many threads at once. A timeout gives verdict "timeout" and
        kills the sandboxes the test started (its thread cannot be killed; it is left
        to finish on its own).
        """
        self._require_open()
        limit = timeout if timeout is not None else self.config.resource_limits.max_test_execution_time
        with self._observe.test(name) as scope:
            outcome = self._tests.run(name, scope.wrap(as_test(name, fn)), float(limit))
            scope.verdict = outcome.verdict
        return outcome

    def _kill_sandbox(self, name: str) -> None:
        try:
            self._api.kill_container(self._runner.aliases.get(name, name))
        except CleanroomError as exc:  # already gone: nothing left to stop
            logger.debug("kill of a timed-out test's sandbox", sandbox=name, error=str(exc))

    def get_logs(self) -> list[str]:
        """The environment's event log, redacted, oldest first."""
        return self._events.lines()

    def get_security_events(self) -> list[dict[str, Any]]:
        """Limit breaches, network refusals, redaction counts and alerts recorded so far (redacted)."""
        return self._events.security()

    # -- metrics ------------------------------------------------------------------
    def record_metric(self, name: str, value: float) -> None:
        self._metrics.record(name, value)

    def _budget_report(self) -> dict[str, Any] | None:
        cg = next((c for c in self._confiners if isinstance(c, CgroupConfiner)), None)
        return cg.report(self._services.shared() if self._services is not None else []) if cg is not None else None

    def get_metrics(self) -> dict[str, Any]:
        """Recorded metrics, the environment's resource peaks, and the shared services it uses."""
        usage: dict[str, Any] = {"peak_cpu_usage_percent": None, "peak_memory_usage_bytes": None}
        report = self._budget_report()
        if report is not None:
            usage = {"peak_cpu_usage_percent": report["cpu_percent"]["peak"],
                     "peak_memory_usage_bytes": report["memory_bytes"]["peak"],
                     "cpu_seconds": report["cpu_seconds"]}
        return {"resource_usage": usage, "services": report["services"] if report is not None else None,
                "custom": self._metrics.summary(), "timestamp": time.time()}

    def check_resource_limits(self) -> dict[str, Any]:
        """Current use against each budget; raises ResourceLimitExceeded when one is over."""
        self._require_open()
        report = self._budget_report()
        if report is None:
            raise CleanroomError("resource limits are not enforced in this environment (no cgroup confiner)")
        checks = (("containers", report["containers"]["used"], report["containers"]["limit"]),
                  ("memory", report["memory_bytes"]["used"], report["memory_bytes"]["limit"]))
        for limit, used, allowed in checks:
            if used > allowed:
                self._audit("limit.breach", "High", limit=limit, limit_value=allowed, observed=used)
                raise ResourceLimitExceeded(limit, allowed, used, None, "environment budget")
        return report
