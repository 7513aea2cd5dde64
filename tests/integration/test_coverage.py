"""Coverage of code run inside sandboxes (enable_coverage_tracking), end to end on real
rootless Podman: the example app's nightly job (examples/app/jobs.py) runs only inside a
sandbox, yet the combined report of a pytest run shows its lines covered, at their path
on the host. The policy allows no writable mount: the data directory is cleanroom's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from coverage import CoverageData

REPO = Path(__file__).resolve().parents[2]
JOB_TEST = "tests/test_sandboxed_job.py::test_the_nightly_job_runs_in_a_sandbox_with_the_app_mounted_read_only"
# The body of jobs.domains_report: each of these lines runs for the job's input.
BODY = ("counts: Counter[str] = Counter()", "for line in lines:", "if not line.strip():",
        'email = json.loads(line)["email"]', 'counts[email.rsplit("@", 1)[-1].lower()] += 1',
        "return \"\\n\".join(f\"{domain} {n}\" for domain, n in sorted(counts.items()))")


def _line_numbers(path: Path, texts: tuple[str, ...]) -> set[int]:
    lines = path.read_text().splitlines()
    found = {i + 1 for i, line in enumerate(lines) if line.strip() in texts}
    assert len(found) == len(texts), f"{path} changed: {texts}"
    return found


def test_a_function_run_only_inside_a_sandbox_shows_as_covered_at_its_host_path(tmp_path):
    # The example app, as a project of its own (pytest's rootdir: what the report is of).
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "app", app, ignore=shutil.ignore_patterns("__pycache__", ".cleanroom-*"))
    policy = tmp_path / "coverage.toml"
    policy.write_text("[cleanroom]\nenable_coverage_tracking = true\n\n"
                      "[cleanroom.security_policy]\nallow_writable_mounts = false\n")
    audit_dir = tmp_path / "audit"
    # PYTHONPATH: this checkout's cleanroom, not whichever one the venv has installed.
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLEANROOM_AUDIT_DIR": str(audit_dir)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", JOB_TEST,
                        f"--rootdir={app}", f"--cleanroom-policy={policy}", "--cleanroom-coverage-report", "xml"],
                       cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
    out = app / ".cleanroom-coverage"
    assert f"coverage xml report: {out / 'coverage.xml'}" in r.stdout

    job = app / "jobs.py"
    body = _line_numbers(job, BODY)
    # Each process's own data: the sandbox's saw the job at /app; the test process never ran it.
    raw = [CoverageData(basename=str(p)) for p in (out / "data").iterdir()]
    for data in raw:
        data.read()
    inside = [d for d in raw if "/app/jobs.py" in d.measured_files()]
    assert len(inside) == 1 and body <= set(inside[0].lines("/app/jobs.py"))
    # (It lists every file of its source, run or not: the job with no line.)
    assert not any(d.lines(str(job)) for d in raw)
    assert any(str(app / "tests" / "test_sandboxed_job.py") in d.measured_files() for d in raw)  # the test process

    # Combined: mapped to the host checkout, nothing left at a sandbox path.
    combined = CoverageData(basename=str(out / ".coverage"))
    combined.read()
    assert body <= set(combined.lines(str(job)))
    assert all(f.startswith(str(app)) for f in combined.measured_files() if f.endswith(".py"))
    # The XML report says the same: every line of the body hit.
    cls = next(c for c in ET.parse(out / "coverage.xml").iter("class") if c.get("filename") == "jobs.py")
    hits = {int(line.get("number")): int(line.get("hits")) for line in cls.iter("line")}
    assert all(hits[n] > 0 for n in body), hits

    # Audited: the attachment, and the writable data directory as cleanroom's own mount.
    records = [json.loads(line) for f in audit_dir.rglob("*.jsonl") for line in f.read_text().splitlines()]
    attached = [x["data"] for x in records if x["event"] == "sandbox.attached"]
    assert [a["attachment"] for a in attached] == ["coverage"]
    mounts = next(x["data"] for x in records if x["event"] == "sandbox.mounts")
    assert mounts["internal"] == [{"source": str(out), "target": "/cleanroom-coverage", "read_only": False}]
    assert mounts["mounts"] == [{"source": str(app), "target": "/app", "read_only": True}]


SESSION_TEST = '''
def test_in_a_session(cleanroom):
    # The project is at /project only because coverage tracking put it there.
    with cleanroom.session("localhost/cleanroom/python:bookworm", workdir="/project") as box:
        r = box.exec(["python3", "-c", "import calc; print(calc.double(4))"])
    assert (r.exit_code, r.stdout.strip()) == (0, "8"), r.stderr
'''


def test_a_session_exec_is_measured_at_the_attachments_project_mount(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "calc.py").write_text("def double(x):\n    y = x * 2\n    return y\n\n\ndef unused():\n    return 0\n")
    (project / "test_session.py").write_text(SESSION_TEST)
    (project / "cleanroom.toml").write_text("[cleanroom]\nenable_coverage_tracking = true\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLEANROOM_AUDIT_DIR": str(tmp_path / "audit")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--rootdir={project}",
                        "--cleanroom-coverage-report", "xml", "test_session.py"],
                       cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    combined = CoverageData(basename=str(project / ".cleanroom-coverage" / ".coverage"))
    combined.read()
    assert set(combined.lines(str(project / "calc.py"))) == {1, 2, 3, 6}  # def lines, and double's body; not unused's
