"""pytest plugin (entry point ``cleanroom``): confined sandboxes as fixtures.

Inert until a test asks for a cleanroom fixture: loading it costs an import and
three options, so suites that never use cleanroom pay nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from sandbox.policy.resolve import effective_config
from sandbox.testing import sandbox_coverage, shard, snapshots
from sandbox.testing.reports import summarize
from sandbox.testing.snapshots import cleanroom_snapshot_normalisers, snapshot  # noqa: F401  (fixtures: found here)
from sandbox.testing.timelimit import pytest_runtest_call  # noqa: F401  (a hook: pytest finds it here)

_LAZY_NOTE = """Fixtures import the engine and services (Podman client, psycopg, redis) when a
test first asks for them: pytest loads this plugin in every run of this venv, and
suites that never use cleanroom must not pay for those imports."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom", "cleanroom sandboxes")
    group.addoption("--cleanroom-policy", default=None, help="policy file (default: ./cleanroom.toml or built-in)")
    group.addoption("--cleanroom-env", default=None, help="environment overlay ([cleanroom.<env>])")
    group.addoption("--cleanroom-report", default=None, metavar="PATH",
                    help="write the run report here: JSON, or a self-contained HTML page with plots if PATH ends .html")
    group.addoption("--cleanroom-shard", default=None, metavar="K/N", help="run only shard K of N of the tests")
    group.addoption("--cleanroom-durations", default=None, metavar="REPORT",
                    help="balance shards by the durations this JSON report recorded (write =PATH: "
                         "a separate existing path moves pytest's rootdir)")
    group.addoption("--cleanroom-snapshot-update", action="store_true", default=False,
                    help="write missing snapshots and rewrite differing ones instead of failing")
    group.addoption("--cleanroom-coverage-report", default=None, choices=sandbox_coverage.REPORT_KINDS,
                    help="with enable_coverage_tracking: one coverage report of the tests and their sandboxes")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cleanroom(policy=None): run this test's sandboxes under this policy file")
    shard.register(config)
    sandbox_coverage.register(config)


@pytest.fixture(scope="session")
def cleanroom(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The session's CleanroomEnvironment; everything it made is removed at the end."""
    from sandbox.environment import CleanroomEnvironment  # optional: heavy, see _LAZY_NOTE

    opts = request.config.option
    config = effective_config(opts.cleanroom_policy, opts.cleanroom_env)
    if config.enable_deterministic_execution:
        random.seed(config.deterministic_seed or 0)
    with CleanroomEnvironment(config) as env:
        request.config._cleanroom_env = env
        sandbox_coverage.attach_to(request.config, env)
        yield env


@pytest.fixture(autouse=True)
def _cleanroom_seed(request: pytest.FixtureRequest) -> None:
    """With deterministic execution, every test starts from the policy's seed."""
    env = getattr(request.config, "_cleanroom_env", None)
    if env is not None and env.config.enable_deterministic_execution:

        random.seed(env.config.deterministic_seed or 0)


@pytest.fixture(autouse=True)
def _cleanroom_observe(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that uses the environment is observed as one test: its sandboxes' spans go
    under one trace (its id lands in the report), test-time thresholds are checked at its end."""
    env = getattr(request.config, "_cleanroom_env", None)
    if env is None:
        yield
        return
    with env.observe_test(request.node.nodeid) as scope:
        request.node.cleanroom_scope = scope
        yield


def _stable_secret(name: str) -> str:
    """A per-user password that survives runs, so singletons can be reused across them."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "cleanroom"
    state.mkdir(parents=True, exist_ok=True)
    path = state / f"{name}.secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
    except FileExistsError:  # another worker wrote it first
        return path.read_text().strip()


def _run_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if workerinput and workerinput.get("testrunuid"):
        return workerinput["testrunuid"][:12]
    if not hasattr(config, "_cleanroom_run_id"):
        config._cleanroom_run_id = os.urandom(6).hex()
    return config._cleanroom_run_id


def _worker_index(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    wid = workerinput.get("workerid", "gw0") if workerinput else "gw0"
    return int(wid[2:]) if wid[2:].isdigit() else 0


@pytest.fixture(scope="session")
def postgres(cleanroom) -> Any:
    """The session's PostgreSQL (a singleton shared by workers and runs when the policy allows)."""
    from sandbox.services import PostgresContainer  # optional: heavy, see _LAZY_NOTE

    pw = _stable_secret("postgres")
    return cleanroom.get_or_create_container("postgres", lambda: PostgresContainer("cleanroom", "cleanroom", pw))


def _no_setup(conn: Any) -> None:
    """The default template preparation: none (an empty database)."""


# Without a setup of the suite's own, the template is an empty database: one such
# template serves every run on this host (named outside cleanroom_tmpl_%, which runs
# sweep), so a warm run finds it present instead of making and dropping one.
EMPTY_TEMPLATE = "cleanroom_template_empty"


@pytest.fixture(scope="session")
def cleanroom_postgres_setup() -> Callable[[Any], None]:
    """Override to prepare the template every postgres_db is cloned from (migrations,
    fixtures). Receives a psycopg connection to the template database."""
    return _no_setup


@pytest.fixture(scope="session")
def cleanroom_postgres_template(request: pytest.FixtureRequest, postgres, cleanroom_postgres_setup) -> str:
    """A template database prepared once per test run (shared by xdist workers), or, with
    no setup of the suite's own, once per host; per-test clones of it start being made
    in the background at once."""
    from sandbox.services.singletons import lock_path  # optional: heavy, see _LAZY_NOTE

    if cleanroom_postgres_setup is _no_setup:
        name = EMPTY_TEMPLATE
        if not postgres.database_exists(name):
            with FileLock(str(lock_path(f"template-{name}"))):
                if not postgres.database_exists(name):
                    postgres.create_database(name)
        postgres.database_queue(name)
        return name
    name = f"cleanroom_tmpl_{_run_id(request.config)}"
    with FileLock(str(lock_path(f"template-{name}"))):
        if not postgres.database_exists(name):
            for (old,) in postgres.execute_query(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'cleanroom_tmpl_%%' AND datname <> %s",
                    (name,)):
                try:
                    postgres.drop_database(old)
                except Exception:
                    pass  # another run on this host may still use it
            postgres.create_database(name)
            with postgres.connect(name, autocommit=True) as conn:
                cleanroom_postgres_setup(conn)
    postgres.database_queue(name)
    return name


@pytest.fixture
def postgres_db(postgres, cleanroom_postgres_template) -> Iterator[Any]:
    """A fresh database for this test, cloned from the session template ahead of time
    (a small queue is kept ready), dropped in the background after."""
    from sandbox.services import TestDatabase  # optional: heavy, see _LAZY_NOTE

    db = TestDatabase(postgres, cleanroom_postgres_template, queue=postgres.database_queue(cleanroom_postgres_template))
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="session")
def redis(cleanroom) -> Any:
    from sandbox.services import RedisContainer  # optional: heavy, see _LAZY_NOTE

    pw = _stable_secret("redis")
    return cleanroom.get_or_create_container("redis", lambda: RedisContainer(password=pw))


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, redis) -> Iterator[Any]:
    """A redis-py client on a clean logical database (one per xdist worker)."""
    client = redis.client(db=_worker_index(request.config) % 16)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, cleanroom) -> Iterator[Callable[..., Any]]:
    """``sandbox(image, cmd, **kw)`` runs one confined sandbox and returns its RunResult.

    With ``@pytest.mark.cleanroom(policy=...)`` the sandboxes of this test run in an
    environment built from that policy instead of the session's.
    """
    from sandbox.environment import CleanroomEnvironment  # optional: heavy, see _LAZY_NOTE

    marker = request.node.get_closest_marker("cleanroom")
    env = cleanroom
    own = None
    if marker is not None and marker.kwargs.get("policy"):
        own = CleanroomEnvironment(effective_config(marker.kwargs["policy"], request.config.option.cleanroom_env))
        env = own.open()
        sandbox_coverage.attach_to(request.config, env)
    results: list[Any] = []
    request.node.cleanroom_results = results  # filled during the call, read by the report hook
    snapshots.for_test(request, cleanroom)  # result.assert_matches_snapshot() works in this test

    def run(image: str, command: list[str], **kw: Any):
        started = time.time()
        result = env.run(image, command, **kw)
        results.append((result, started, time.time()))
        return result

    try:
        yield run
    finally:
        if own is not None:
            own.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    timed = getattr(item, "cleanroom_results", None) or []
    results = [r for r, _, _ in timed]
    scope = getattr(item, "cleanroom_scope", None)
    if report.when == "call" and scope is not None:
        scope.verdict = report.outcome
        if scope.trace_id:
            report.sections.append(("cleanroom trace", f"trace id {scope.trace_id}"))
            report.user_properties.append(("cleanroom_trace", scope.trace_id))
    if report.when == "call" and report.failed and results:
        # Output is already redacted: it never existed unredacted outside the engine.
        for i, r in enumerate(results):
            report.sections.append((f"cleanroom sandbox {i} ({r.sandbox}) exit {r.exit_code}",
                                    f"--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"))
    if report.when == "call" and item.config.option.cleanroom_report:
        from sandbox.observe.run_report import sandbox_entry  # optional: heavy, see _LAZY_NOTE

        digest = hashlib.sha256()
        redactions: dict[str, int] = {}
        for r in results:
            digest.update(r.stdout.encode() + b"\0" + r.stderr.encode() + b"\0")
            for k, v in r.redactions.items():
                redactions[k] = redactions.get(k, 0) + v
        data = {
            "sandboxes": [sandbox_entry(r, started, ended) for r, started, ended in timed],
            "redactions": redactions,
            "output_sha256": digest.hexdigest(),
            "trace_id": scope.trace_id if scope is not None else None,
        }
        # user_properties travel with the report to the xdist controller.
        report.user_properties.append(("cleanroom", json.dumps(data)))


# Report state of the controller process (or the only process without xdist).
_REPORT: dict[str, Any] = {}
_TRACES: dict[str, str] = {}  # test → trace id, printed at the end


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "cleanroom_trace":
            _TRACES[report.nodeid] = value
    collected = _REPORT.get("tests")
    if collected is None:
        return
    entry = collected.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "duration": 0.0})
    entry["duration"] = round(entry["duration"] + report.duration, 4)
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
    for key, value in report.user_properties:
        if key == "cleanroom":
            entry.update(json.loads(value))


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.option.cleanroom_report and not hasattr(session.config, "workerinput"):
        _REPORT["tests"] = {}
        _REPORT["started"] = time.time()


def _environment_section(config: pytest.Config) -> dict[str, Any] | None:
    env = getattr(config, "_cleanroom_env", None)
    if env is None:
        return None
    from sandbox.observe.run_report import audit_verified, environment_section  # optional: heavy, see _LAZY_NOTE

    section = environment_section(env)
    section["audit_verified"] = audit_verified(env)
    return section


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: a worker's services, alerts and audit verdict travel in its workeroutput."""
    data = getattr(node, "workeroutput", {}).get("cleanroom")
    if data and _REPORT.get("tests") is not None:
        _REPORT.setdefault("workers", []).append(json.loads(data))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TRACES:
        terminalreporter.section("cleanroom traces")
        for nodeid, trace_id in _TRACES.items():
            terminalreporter.write_line(f"{trace_id}  {nodeid}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.option.cleanroom_report
    if path and hasattr(session.config, "workerinput"):
        section = _environment_section(session.config)
        if section is not None:
            session.config.workeroutput["cleanroom"] = json.dumps(section)
    collected = _REPORT.get("tests")
    if not path or collected is None or hasattr(session.config, "workerinput"):
        return
    tests = list(collected.values())
    totals = summarize(tests)
    totals["duration_seconds"] = round(time.time() - _REPORT["started"], 3)
    env = getattr(session.config, "_cleanroom_env", None)
    if env is not None:
        custom = env.get_metrics()["custom"]
        totals["containers_created"] = int(custom.get("containers.created", {}).get("sum", 0))
        totals["containers_reused"] = int(custom.get("containers.reused", {}).get("sum", 0))
        totals["audit_log"] = str(env.audit_path) if env.audit_path else None
    totals["finished"] = round(time.time(), 3)
    # One environment section (this process's, or each xdist worker's merged).
    sections = [s for s in [_environment_section(session.config), *_REPORT.get("workers", [])] if s]
    environment = {"id": ", ".join(s["id"] for s in sections), "services": [x for s in sections for x in s["services"]],
                   "alerts": [x for s in sections for x in s["alerts"]]}
    verdicts = [s["audit_verified"] for s in sections if s["audit_verified"] is not None]
    totals["audit_verified"] = all(verdicts) if verdicts else None
    data = {"tests": tests, "totals": totals, "environment": environment}
    if getattr(session.config, "_cleanroom_shard", None):
        data["shard"] = session.config._cleanroom_shard
    from sandbox.observe.run_report import write_report  # optional: heavy, see _LAZY_NOTE

    write_report(path, data)
