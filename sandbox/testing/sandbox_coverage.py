"""Coverage (policy key ``enable_coverage_tracking``, with ``--cleanroom-coverage-report
term|xml|html``): the test process's own coverage plus the coverage of Python run inside
the sandboxes its tests start, mapped back to the host checkout and combined into one
report under ``.cleanroom-coverage/`` (``coverage.xml``, ``htmlcov/``).

Inside a sandbox, coverage.py starts through ``COVERAGE_PROCESS_START``: a
``sitecustomize`` on ``PYTHONPATH`` calls ``coverage.process_startup()``. Nothing needs
installing in the image: the host's coverage package is mounted read-only (it needs the
same Python ABI: Debian bookworm's 3.11 on both sides for the shipped images), the project
(pytest's rootdir) is mounted read-only at ``/project``, and the run's data directory is
mounted writable, where each sandboxed process writes its own ``.coverage.*`` file.

The three mounts are the environment's coverage *attachment*
(``sandbox.engine.attachment``), set by this plugin only: cleanroom's own system mounts,
so the data directory is writable without ``allow_writable_mounts`` and no user mount
becomes writable through it; each is in the create body (the posture check holds the
container to it) and in the audit (``sandbox.attached``; ``sandbox.mounts`` names the
writable one). Code the test mounts itself (``mounts=[Mount(dir, "/app")]``, a part of the
project or the whole) is measured too: combining maps each sandbox path back to where it
came from with coverage.py's ``[paths]``, so one report shows both sides.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from sandbox.engine.attachment import Attachment
from sandbox.engine.types import CreateRequest, Mount
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
        # Sandbox path prefix → the host path it showed (the first seen wins), for combining.
        self.paths: dict[str, str] = {}

    # -- the sandbox side --------------------------------------------------------------
    def prepare(self) -> None:
        """A fresh data directory (a report covers one run): the rc file sandboxed processes
        read, their sitecustomize."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        (self.data_dir / "data").mkdir(parents=True)
        (self.data_dir / "site").mkdir()
        (self.data_dir / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        # No `source`: code is measured wherever the test mounted it; combining keeps the project's.
        (self.data_dir / "sandbox.coveragerc").write_text(
            "[run]\nparallel = True\n"
            f"data_file = {self.sandbox_data}/data/.coverage\n"
            f"omit =\n    {self.sandbox_data}/*\n    {self.sandbox_lib}/*\n")
        # Sandboxed processes run as another uid than the test process on some hosts.
        os.chmod(self.data_dir / "data", 0o777)

    def sandbox_env(self) -> dict[str, str]:
        return {"COVERAGE_PROCESS_START": f"{self.sandbox_data}/sandbox.coveragerc",
                "PYTHONPATH": f"{self.sandbox_data}/site:{self.sandbox_lib}"}

    def sandbox_mounts(self) -> list[Mount]:
        """The project and the coverage package read-only, the data directory writable."""
        package = Path(_coverage_module().__file__).resolve().parent
        return [Mount(str(self.project), self.sandbox_project),
                Mount(str(package), f"{self.sandbox_lib}/coverage"),
                Mount(str(self.data_dir), self.sandbox_data, read_only=False)]

    def attachment(self) -> Attachment:
        """What the environment adds to every sandbox (``env._attach_to_sandboxes``)."""
        return Attachment(name="coverage", env=self.sandbox_env(), mounts=self.sandbox_mounts())

    def note_sandbox(self, request: CreateRequest) -> None:
        """Where this sandbox sees project code: the attachment's /project (unless the test put
        its own mount there), and each mount of the project, of a part of it, or of a directory
        holding it."""
        seen: list[tuple[str, Path]] = []
        if any(m.target == self.sandbox_project and Path(m.source) == self.project for m in request.system_mounts):
            seen.append((self.sandbox_project, self.project))
        for mount in request.mounts:
            source = Path(os.path.realpath(Path(mount.source).expanduser()))
            target = mount.target.rstrip("/") or "/"
            if source == self.project or source.is_relative_to(self.project):
                seen.append((target, source))
            elif self.project.is_relative_to(source):
                seen.append((f"{target}/{self.project.relative_to(source)}", self.project))
        for target, host in seen:
            known = self.paths.setdefault(target, str(host))
            if known != str(host):
                logger.warning("coverage: sandboxes saw different host paths at one place; lines found there "
                               "are mapped to the first", sandbox_path=target, first=known, later=str(host))

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
        (self.data_dir / ".coverage").unlink(missing_ok=True)  # combined afresh each time
        cov = _coverage_module().Coverage(data_file=str(self.data_dir / ".coverage"), config_file=False,
                                          source=[str(self.project)])
        # [paths]: the first entry is where the files are; later ones are where they were seen.
        # Longest sandbox path first, so /project/app is not taken for /project.
        seen = sorted({**{self.sandbox_project: str(self.project)}, **self.paths}.items(), key=lambda kv: -len(kv[0]))
        cov.set_option("paths", {f"seen{i}": [host, target] for i, (target, host) in enumerate(seen)})
        # Sandboxes measure all they run; the report is of the project (and not of this directory).
        cov.set_option("report:include", [f"{self.project}/*"])
        cov.set_option("report:omit", [f"{self.data_dir}/*"])
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
        config._cleanroom_coverage = self.run  # for the environments the fixtures make (attach_to)
        self.run.start_test_process()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.run.stop_test_process()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("cleanroom coverage (test process and sandboxes)")
        made = self.run.report(self.kind, out=terminalreporter)
        if made != "terminal":
            terminalreporter.write_line(f"coverage {self.kind} report: {made}")


def attach_to(config: pytest.Config, env: Any) -> None:
    """Called by the fixtures with each environment they open: under a coverage run and a
    policy with enable_coverage_tracking, its sandboxes get the coverage attachment."""
    run: CoverageRun | None = getattr(config, "_cleanroom_coverage", None)
    if run is not None and env.config.enable_coverage_tracking:
        env._attach_to_sandboxes(run.attachment(), run.note_sandbox)


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
