"""Coverage (policy key ``enable_coverage_tracking``): the test process's own coverage
plus the coverage of Python run inside sandboxes, mapped back to the host checkout and
combined into one report (``--cleanroom-coverage-report term|xml|html``).

Inside a sandbox, coverage.py starts through ``COVERAGE_PROCESS_START``: a
``sitecustomize`` on ``PYTHONPATH`` calls ``coverage.process_startup()``. Nothing needs
installing in the image: the host's coverage package is mounted read-only (same
Debian Python ABI), and the run's data directory is mounted writable, where each
sandboxed process writes its own ``.coverage.<host>.<pid>.<rand>`` file. The project is
seen inside at ``sandbox_project`` (``/project``); combining maps that prefix back to the
host checkout with coverage.py's ``[paths]``, so one report shows both sides.

The mounts are listed by :meth:`CoverageRun.sandbox_binds`; giving them to a sandbox
needs bind mounts on ``env.run`` (``mounts=``), which this branch does not have yet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import CleanroomError
from sandbox.policy.resolve import effective_config

REPORT_KINDS = ("term", "xml", "html")

_SITECUSTOMIZE = """# Written by cleanroom: start coverage.py in every Python process of this sandbox.
import coverage
coverage.process_startup()
"""


def _coverage_module() -> Any:
    try:
        import coverage  # optional: only runs that track coverage need it
    except ImportError as exc:
        raise CleanroomError("enable_coverage_tracking needs coverage.py in the test venv: pip install "
                             "'cleanroom[test]' (or pip install coverage)") from exc
    return coverage


class CoverageRun:
    """One run's coverage: its data directory, the sandbox side's set-up, the combined report."""

    def __init__(self, project: str | Path, data_dir: str | Path, *, sandbox_project: str = "/project",
                 sandbox_data: str = "/cleanroom-coverage", sandbox_lib: str = "/cleanroom-coverage-lib") -> None:
        self.project = Path(project).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.sandbox_project = sandbox_project.rstrip("/")
        self.sandbox_data = sandbox_data.rstrip("/")
        self.sandbox_lib = sandbox_lib.rstrip("/")
        self._own: Any = None

    # -- the sandbox side --------------------------------------------------------------
    def prepare(self) -> None:
        """The data directory: the rc file sandboxed processes read, their sitecustomize."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "site").mkdir(exist_ok=True)
        (self.data_dir / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        (self.data_dir / "sandbox.coveragerc").write_text(
            "[run]\nparallel = True\n"
            f"data_file = {self.sandbox_data}/data/.coverage\n"
            f"source = {self.sandbox_project}\n")
        # Sandboxed processes run as another uid than the test process on some hosts.
        os.chmod(self.data_dir / "data", 0o777)

    def sandbox_env(self) -> dict[str, str]:
        return {"COVERAGE_PROCESS_START": f"{self.sandbox_data}/sandbox.coveragerc",
                "PYTHONPATH": f"{self.sandbox_data}/site:{self.sandbox_lib}"}

    def sandbox_binds(self) -> list[tuple[str, str, bool]]:
        """(host path, sandbox path, read-only) of each mount the sandbox side needs."""
        package = Path(_coverage_module().__file__).resolve().parent
        return [(str(self.project), self.sandbox_project, True),
                (str(package), f"{self.sandbox_lib}/coverage", True),
                (str(self.data_dir), self.sandbox_data, False)]

    # -- the test process ---------------------------------------------------------------
    def start_test_process(self) -> None:
        self._own = _coverage_module().Coverage(data_file=str(self.data_dir / "data" / ".coverage"),
                                                data_suffix=True, source=[str(self.project)])
        self._own.start()

    def stop_test_process(self) -> None:
        if self._own is not None:
            self._own.stop()
            self._own.save()
            self._own = None

    # -- combined -----------------------------------------------------------------------
    def combine(self) -> Any:
        """Every data file of the run, sandbox paths mapped to the host checkout, as one Coverage."""
        cov = _coverage_module().Coverage(data_file=str(self.data_dir / ".coverage"), config_file=False,
                                          source=[str(self.project)])
        # [paths]: the first entry is where the files are; later ones are where they were seen.
        cov.set_option("paths", {"project": [str(self.project), self.sandbox_project]})
        cov.combine([str(self.data_dir / "data")], keep=True)
        cov.save()
        return cov

    def report(self, kind: str, out: Any = None) -> str:
        """term: the table (written to ``out``); xml: coverage.xml; html: htmlcov/. Returns what was made."""
        cov = self.combine()
        if kind == "term":
            cov.report(file=out or sys.stdout, show_missing=True)
            return "terminal"
        if kind == "xml":
            target = str(self.data_dir / "coverage.xml")
            cov.xml_report(outfile=target)
            return target
        if kind == "html":
            target = str(self.data_dir / "htmlcov")
            cov.html_report(directory=target)
            return target
        raise CleanroomError(f"--cleanroom-coverage-report {kind!r}: one of {', '.join(REPORT_KINDS)}")


class CoveragePlugin:
    """Runs the test process under coverage and writes the combined report at the end."""

    def __init__(self, config: pytest.Config, kind: str) -> None:
        self.kind = kind
        root = Path(str(config.rootpath))
        self.run = CoverageRun(root, root / ".cleanroom-coverage")
        self.run.prepare()
        config._cleanroom_coverage = self.run  # for the sandbox fixture (sandbox_env, sandbox_binds)
        self.run.start_test_process()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.run.stop_test_process()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("cleanroom coverage (test process and sandboxes)")
        made = self.run.report(self.kind, out=terminalreporter)
        if made != "terminal":
            terminalreporter.write_line(f"coverage {self.kind} report: {made}")


def register(config: pytest.Config) -> None:
    """Called by the plugin's pytest_configure: starts coverage when a report is asked for."""
    kind = config.getoption("cleanroom_coverage_report")
    if not kind or hasattr(config, "workerinput"):
        return
    if kind not in REPORT_KINDS:
        raise pytest.UsageError(f"--cleanroom-coverage-report {kind!r}: one of {', '.join(REPORT_KINDS)}")
    policy = effective_config(config.getoption("cleanroom_policy"), config.getoption("cleanroom_env"))
    if not policy.enable_coverage_tracking:
        raise pytest.UsageError("--cleanroom-coverage-report needs `enable_coverage_tracking = true` under "
                                "[cleanroom] in the session's policy")
    config.pluginmanager.register(CoveragePlugin(config, kind), "cleanroom-coverage")
