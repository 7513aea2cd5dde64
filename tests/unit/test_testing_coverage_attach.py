"""The coverage attachment without Podman: cleanroom's own writable data mount goes into
every sandbox of an environment only while coverage tracking is on, is in the create body
(so the posture check holds the container to it) and in the audit, and never makes a user
mount writable (fake engine behind a real CleanroomEnvironment and SandboxRunner)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import coverage
import pytest
from fake_podman import FakePodman

import sandbox.environment as environment_module
from sandbox import CleanroomEnvironment
from sandbox.engine.attachment import Attachment, attach, refuse_unsafe
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.spec import build_spec
from sandbox.engine.types import CreateRequest, Mount
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig
from sandbox.testing.sandbox_coverage import CoverageRun, attach_to


def _binds(spec: dict) -> dict[str, tuple[str, str]]:
    """destination → (source, "ro"/"rw") of each bind mount in a create body."""
    return {m["destination"]: (m["source"], "ro" if "ro" in m["options"] else "rw")
            for m in spec.get("mounts") or [] if m["type"] == "bind"}


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    """An open environment (of the given policy) whose engine is the fake; the audit is read back."""
    fake = FakePodman()
    specs: list[dict] = []  # every create body, in order (the fake forgets removed containers)
    create = fake.create_container
    fake.create_container = lambda spec, **kw: specs.append(spec) or create(spec, **kw)
    monkeypatch.setattr(environment_module, "LibpodAPI", lambda *a, **k: fake)
    # The fake's processes have no /proc entry to read the kernel's view from.
    monkeypatch.setattr(environment_module, "SandboxRunner", functools.partial(SandboxRunner, kernel_view=None))
    monkeypatch.chdir(tmp_path)  # allowed_mount_paths defaults to the current directory
    opened: list[CleanroomEnvironment] = []

    def make(**changes):
        env = CleanroomEnvironment(CleanroomConfig.default().with_changes(**changes), confine=False,
                                   audit_dir=tmp_path / "audit").open()
        opened.append(env)
        return env

    def audit(env) -> list[dict]:
        return [json.loads(line) for line in env.audit_path.read_text().splitlines()]

    yield SimpleNamespace(fake=fake, specs=specs, make=make, audit=audit)
    for env in opened:
        env.close()


@pytest.fixture
def coverage_run(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    run = CoverageRun(project, project / ".cleanroom-coverage")
    run.prepare()
    return run


def test_attach_adds_variables_and_system_mounts_and_a_user_mount_keeps_its_place():
    attachment = Attachment(name="x", env={"PYTHONPATH": "/ours", "A": "1"},
                            mounts=[Mount("/h/p", "/project"), Mount("/h/d", "/data", read_only=False)])
    request = CreateRequest(image="i", name="n", env={"PYTHONPATH": "/theirs", "A": "2"},
                            mounts=[Mount("/h/other", "/project/")])
    out, added = attach(request, attachment)
    assert out.env == {"PYTHONPATH": "/ours:/theirs", "A": "2"}  # a search path keeps ours first
    assert added == [Mount("/h/d", "/data", read_only=False)]  # the user's /project stays, ours is left out
    assert out.mounts == request.mounts and out.system_mounts == added


def test_a_writable_system_mount_is_writable_in_the_spec_and_helpers_stay_read_only():
    spec = build_spec(CleanroomConfig.default(), "img", ["true"],
                      system_mounts=[Mount("/h/helper", "/.cleanroom/helper"), Mount("/h/d", "/data", read_only=False)])
    assert _binds(spec) == {"/.cleanroom/helper": ("/h/helper", "ro"), "/data": ("/h/d", "rw")}


def test_the_coverage_mounts_are_in_every_sandbox_only_while_tracking_is_on(fake_env, coverage_run):
    plugin_config = SimpleNamespace(_cleanroom_coverage=coverage_run)  # --cleanroom-coverage-report given

    off = fake_env.make()
    attach_to(plugin_config, off)  # the policy does not enable the key: nothing is attached
    unasked = fake_env.make(enable_coverage_tracking=True)
    attach_to(SimpleNamespace(), unasked)  # no report asked for: nothing either
    on = fake_env.make(enable_coverage_tracking=True)
    attach_to(plugin_config, on)
    for env in (off, unasked, on):
        env.run("img", ["/bin/true"])
        with env.session("img") as session:
            session.exec(["/bin/true"])
    specs = fake_env.specs
    assert len(specs) == 6
    data = str(coverage_run.data_dir)
    for spec in specs[:4]:
        assert not {"/project", "/cleanroom-coverage"} & set(_binds(spec))
        assert "COVERAGE_PROCESS_START" not in spec.get("env", {})
    for spec in specs[4:]:
        binds = _binds(spec)
        assert binds["/cleanroom-coverage"] == (data, "rw")
        assert binds["/project"] == (str(coverage_run.project), "ro")
        assert binds["/cleanroom-coverage-lib/coverage"][1] == "ro"
        assert spec["env"]["COVERAGE_PROCESS_START"] == "/cleanroom-coverage/sandbox.coveragerc"
    # The session's agent (cleanroom-helper) is still there, read-only, beside the attachment.
    assert _binds(specs[5])["/.cleanroom/helper"][1] == "ro"
    # Audited: what was attached, and the writable mount among the sandbox's mounts.
    records = fake_env.audit(on)
    attached = [r for r in records if r["event"] == "sandbox.attached"]
    assert len(attached) == 2 and attached[0]["data"]["attachment"] == "coverage"
    mounts = [r["data"] for r in records if r["event"] == "sandbox.mounts"]
    assert len(mounts) == 2 and all(
        m["internal"] == [{"source": data, "target": "/cleanroom-coverage", "read_only": False}] for m in mounts)
    assert not [r for r in fake_env.audit(off) if r["event"] in ("sandbox.attached", "sandbox.mounts")]


def test_user_mounts_stay_under_the_policy_while_coverage_is_attached(fake_env, coverage_run, tmp_path):
    env = fake_env.make(enable_coverage_tracking=True)
    attach_to(SimpleNamespace(_cleanroom_coverage=coverage_run), env)
    (tmp_path / "work").mkdir()
    for target in ("/work", "/cleanroom-coverage"):  # not even at the attachment's own place
        with pytest.raises(PolicyError, match="allow_writable_mounts"):
            env.run("img", ["/bin/true"], mounts=[Mount(str(tmp_path / "work"), target, read_only=False)])
    assert fake_env.specs == []  # refused before anything was created
    # A read-only user mount at /project takes that place (and is still judged by the policy).
    env.run("img", ["/bin/true"], mounts=[Mount("work", "/project")])
    spec = fake_env.specs[-1]
    assert _binds(spec)["/project"] == (str(tmp_path / "work"), "ro")
    assert _binds(spec)["/cleanroom-coverage"] == (str(coverage_run.data_dir), "rw")


def test_an_attachment_never_mounts_the_host_root_or_the_engine_socket(fake_env, tmp_path):
    holder = tmp_path / "run" / "podman"
    holder.mkdir(parents=True)
    sock = str(holder / "podman.sock")
    for source in (str(tmp_path / "run"), str(holder)):
        with pytest.raises(PolicyError, match="Podman API socket"):
            refuse_unsafe(Attachment(name="coverage", mounts=[Mount(source, "/project")]), [sock])
    refuse_unsafe(Attachment(name="coverage", mounts=[Mount(str(tmp_path / "run" / "x"), "/project")]), [sock])
    env = fake_env.make(enable_coverage_tracking=True)
    with pytest.raises(PolicyError, match="host's root"):
        env._attach_to_sandboxes(Attachment(name="coverage", mounts=[Mount("/", "/project")]))
    env.run("img", ["/bin/true"])
    assert "/project" not in _binds(fake_env.specs[-1])  # refused: nothing was attached


APP = '''
def in_a_sandbox(x):
    return x * 2
'''


def test_code_the_test_mounts_itself_is_mapped_back_from_where_it_was_mounted(tmp_path):
    """A sandbox that sees only ``project/app`` at /app (the test's own mount): its lines
    are found at /app and reported at the host path."""
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "job.py").write_text(textwrap.dedent(APP))
    seen_at = tmp_path / "sandbox-view" / "app"  # stands in for /app inside the sandbox
    seen_at.mkdir(parents=True)
    (seen_at / "job.py").write_text(textwrap.dedent(APP))
    data = tmp_path / "cov"
    lib = Path(coverage.__file__).resolve().parent.parent
    run = CoverageRun(project, data, sandbox_data=str(data), sandbox_lib=str(lib))
    run.prepare()
    run.note_sandbox(CreateRequest(image="i", name="n", mounts=[Mount(str(project / "app"), str(seen_at))]))
    assert run.paths == {str(seen_at): str(project / "app")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env.update(run.sandbox_env())
    subprocess.run([sys.executable, "-c", "import job; job.in_a_sandbox(2)"], env=env, cwd=seen_at, check=True,
                   timeout=60)
    cov = run.combine()
    host_file = str(project / "app" / "job.py")
    assert host_file in cov.get_data().measured_files()
    _, statements, _, missing, _ = cov.analysis2(host_file)
    assert statements and not missing
    # A mount of a directory holding the project maps the project's place inside it.
    run.note_sandbox(CreateRequest(image="i", name="m", mounts=[Mount(str(tmp_path), "/src")]))
    assert run.paths["/src/project"] == str(project)
