"""Coverage combining and path mapping, with the sandbox side stood in by a subprocess
that sees the project at another path (as a mounted /project would be seen) and starts
coverage only through the environment CoverageRun gives a sandbox."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import coverage

from sandbox.testing.sandbox_coverage import CoverageRun

APP = '''
def only_in_the_sandbox(x):
    if x > 1:
        return "big"
    return "small"


def only_on_the_host():
    return 42


def never_called():
    return None
'''


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "checkout"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "calc.py").write_text(textwrap.dedent(APP))
    return project


def _run_as_sandbox(run: CoverageRun, project_seen_at: Path, code: str) -> None:
    """A Python process that sees only what a sandbox would: the project at another path,
    coverage through COVERAGE_PROCESS_START and PYTHONPATH from sandbox_env()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env.update(run.sandbox_env())
    env["PYTHONPATH"] += os.pathsep + str(project_seen_at)
    subprocess.run([sys.executable, "-c", code], env=env, cwd=project_seen_at, check=True, timeout=60)


def test_sandbox_coverage_is_mapped_to_the_host_checkout_and_combined_with_the_test_process(tmp_path):
    project = _project(tmp_path)
    inside = tmp_path / "in-sandbox" / "project"  # what /project is inside a sandbox
    shutil.copytree(project, inside)
    data = tmp_path / "cov"
    lib = Path(coverage.__file__).resolve().parent.parent
    run = CoverageRun(project, data, sandbox_project=str(inside), sandbox_data=str(data), sandbox_lib=str(lib))
    run.prepare()
    _run_as_sandbox(run, inside, "from app.calc import only_in_the_sandbox; only_in_the_sandbox(5)")

    run.start_test_process()
    sys.path.insert(0, str(project))
    try:
        from app.calc import only_on_the_host  # imported under the test process's coverage
        only_on_the_host()
    finally:
        run.stop_test_process()
        sys.path.remove(str(project))
        sys.modules.pop("app.calc", None)
        sys.modules.pop("app", None)

    cov = run.combine()
    host_file = str(project / "app" / "calc.py")
    assert cov.get_data().measured_files() >= {host_file}
    assert not any(str(inside) in f for f in cov.get_data().measured_files())  # every path mapped back
    _, statements, _, missing, _ = cov.analysis2(host_file)
    # Lines 2-4 of the function run in the sandbox; 9 on the host; 12-13 never.
    lines = {i + 1: t for i, t in enumerate(textwrap.dedent(APP).splitlines())}
    covered = {lines[n].strip() for n in statements if n not in missing}
    assert {"if x > 1:", 'return "big"', "return 42"} <= covered
    assert {lines[n].strip() for n in missing} == {'return "small"', "return None"}

    out = io.StringIO()
    assert run.report("term", out=out) == "terminal"
    assert "calc.py" in out.getvalue() and str(inside) not in out.getvalue()
    xml = Path(run.report("xml"))
    assert xml.is_file() and "calc.py" in xml.read_text()
    assert (Path(run.report("html")) / "index.html").is_file()


def test_the_sandbox_side_needs_three_mounts_and_an_rc_pointing_inside(tmp_path):
    run = CoverageRun(_project(tmp_path), tmp_path / "cov")
    (tmp_path / "cov" / "data").mkdir(parents=True)
    (tmp_path / "cov" / "data" / ".coverage.stale").write_text("from an earlier run")
    run.prepare()
    assert os.listdir(tmp_path / "cov" / "data") == []  # a report covers one run
    rc = (tmp_path / "cov" / "sandbox.coveragerc").read_text()
    assert "data_file = /cleanroom-coverage/data/.coverage" in rc and "parallel = True" in rc
    assert run.sandbox_env() == {"COVERAGE_PROCESS_START": "/cleanroom-coverage/sandbox.coveragerc",
                                 "PYTHONPATH": "/cleanroom-coverage/site:/cleanroom-coverage-lib"}
    mounts = run.sandbox_mounts()
    assert [(m.target, m.read_only) for m in mounts] == [("/project", True), ("/cleanroom-coverage-lib/coverage", True),
                                                         ("/cleanroom-coverage", False)]
    assert Path(mounts[1].source, "__init__.py").is_file()
    assert run.attachment().mounts == mounts and run.attachment().env == run.sandbox_env()


def _pytest(suite: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(suite), *args],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=120)


def test_the_plugin_reports_the_test_process_coverage_and_refuses_without_the_key(tmp_path):
    project = _project(tmp_path)
    (project / "test_calc.py").write_text("from app.calc import only_on_the_host\n\n"
                                          "def test_host():\n    assert only_on_the_host() == 42\n")
    (project / "cleanroom.toml").write_text("[cleanroom]\nenable_coverage_tracking = true\n")
    r = _pytest(project, "--cleanroom-coverage-report", "term")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cleanroom coverage (test process and sandboxes)" in r.stdout
    row = next(line for line in r.stdout.splitlines() if "calc.py" in line)
    assert row.split()[1:3] == ["8", "4"], row  # missed: the sandbox-only function and never_called
    (project / "cleanroom.toml").write_text("[cleanroom]\n")
    r = _pytest(project, "--cleanroom-coverage-report", "term")
    assert r.returncode == 4 and "enable_coverage_tracking = true" in r.stderr
