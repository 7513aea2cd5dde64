"""pytest plugin (entry point ``cleanroom``): confined sandboxes as fixtures.

Inert until a test asks for a cleanroom fixture: loading it costs an import and
three options, so suites that never use cleanroom pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom", "cleanroom sandboxes")
    group.addoption("--cleanroom-policy", default=None, help="policy file (default: ./cleanroom.toml or built-in)")
    group.addoption("--cleanroom-env", default=None, help="environment overlay ([cleanroom.<env>])")
    group.addoption("--cleanroom-report", default=None, metavar="PATH", help="write a JSON run report here")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cleanroom(policy=None): run this test's sandboxes under this policy file")


def _load_config(policy: str | None, env: str | None):
    from pathlib import Path

    from sandbox.policy import CleanroomConfig

    if policy:
        return CleanroomConfig.from_file(policy, env=env)
    if Path("cleanroom.toml").is_file():
        return CleanroomConfig.from_file("cleanroom.toml", env=env)
    return CleanroomConfig.default()


@pytest.fixture(scope="session")
def cleanroom(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The session's CleanroomEnvironment; everything it made is removed at the end."""
    from sandbox.environment import CleanroomEnvironment

    opts = request.config.option
    config = _load_config(opts.cleanroom_policy, opts.cleanroom_env)
    with CleanroomEnvironment(config) as env:
        yield env


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, cleanroom) -> Iterator[Callable[..., Any]]:
    """``sandbox(image, cmd, **kw)`` runs one confined sandbox and returns its RunResult.

    With ``@pytest.mark.cleanroom(policy=...)`` the sandboxes of this test run in an
    environment built from that policy instead of the session's.
    """
    from sandbox.environment import CleanroomEnvironment

    marker = request.node.get_closest_marker("cleanroom")
    env = cleanroom
    own = None
    if marker is not None and marker.kwargs.get("policy"):
        own = CleanroomEnvironment(_load_config(marker.kwargs["policy"], request.config.option.cleanroom_env))
        env = own.open()
    results: list[Any] = []

    def run(image: str, command: list[str], **kw: Any):
        result = env.run(image, command, **kw)
        results.append(result)
        return result

    try:
        yield run
    finally:
        request.node.cleanroom_results = results
        if own is not None:
            own.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    results = getattr(item, "cleanroom_results", None)
    if report.when == "call" and report.failed and results:
        # Output is already redacted: it never existed unredacted outside the engine.
        for i, r in enumerate(results):
            report.sections.append((f"cleanroom sandbox {i} ({r.sandbox}) exit {r.exit_code}",
                                    f"--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"))
