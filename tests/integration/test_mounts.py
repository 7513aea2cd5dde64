"""A user's own code in a sandbox: bind mounts, working directory, stdin, against real
rootless Podman. Refused mounts are refused before any container exists."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from podman_helpers import BUSYBOX, PYTHON, REPO, cleanroom_cli, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, Mount, PolicyError
from sandbox.engine.teardown.ownership import LABEL_ENV

STRICT = REPO / "policies" / "strict.toml"


def _strict(**security) -> CleanroomConfig:
    config = CleanroomConfig.from_file(STRICT)
    return config.with_changes(security_policy=msgspec.structs.replace(config.security_policy, **security))


def _project(root: Path) -> Path:
    """A tiny pytest project: one passing test that prints a secret, one that reads stdin-free data."""
    proj = root / "proj"
    (proj / "tests").mkdir(parents=True)
    (proj / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (proj / "tests" / "test_calc.py").write_text(
        "import os, sys\n"
        "sys.path.insert(0, os.getcwd())\n"
        "from calc import add\n\n"
        "def test_add():\n"
        "    print('connecting with password=hunter2-in-the-checkout')\n"
        "    assert add(2, 3) == 5\n\n"
        "def test_cwd_is_the_mount():\n"
        "    assert os.getcwd() == '/src'\n"
    )
    return proj


def test_a_mounted_checkouts_tests_run_under_strict_and_come_back_redacted(tmp_path, podman_url):
    proj = _project(tmp_path)
    config = _strict(allowed_mount_paths=[str(tmp_path)])
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        result = env.run(PYTHON, ["python3", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests"],
                         mounts=[Mount(str(proj), "/src")], workdir="/src")
        audit = env.audit_path.read_text()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert "connecting with" in result.stdout
    assert "hunter2-in-the-checkout" not in result.stdout + result.stderr
    assert sum(result.redactions.values()) >= 1
    assert '"sandbox.mounts"' in audit and str(proj) in audit


def test_a_read_only_mount_cannot_be_written_and_a_writable_one_can_when_allowed(tmp_path, podman_url):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    out = tmp_path / "out"
    out.mkdir()
    config = _strict(allowed_mount_paths=[str(tmp_path)], allow_writable_mounts=True)
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        ro = env.run(BUSYBOX, ["/bin/sh", "-c", "cat /data/in.txt; echo x > /data/new.txt"],
                     mounts=[Mount(str(data), "/data")])
        rw = env.run(BUSYBOX, ["/bin/sh", "-c", "echo written > /out/new.txt"],
                     mounts=[Mount(str(out), "/out", read_only=False)])
    assert ro.stdout == "from the host\n"
    assert ro.exit_code != 0 and "Read-only file system" in ro.stderr
    assert not (data / "new.txt").exists()
    assert rw.exit_code == 0, rw.stderr
    assert (out / "new.txt").read_text() == "written\n"


def _refusals(tmp_path: Path) -> dict[str, tuple[dict, Mount, str]]:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "escape").symlink_to("/etc")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return {
        "outside": ({"allowed_mount_paths": [str(allowed)]}, Mount("/etc", "/x"), "outside the allowed paths"),
        "symlink escape": ({"allowed_mount_paths": [str(allowed)]}, Mount(str(allowed / "escape"), "/x"),
                           "resolves to /etc"),
        "dot-dot": ({"allowed_mount_paths": [str(allowed)]}, Mount(str(allowed) + "/.." * len(allowed.parts) + "/etc", "/x"),
                    "outside the allowed paths"),
        "device": ({"allowed_mount_paths": ["/dev"]}, Mount("/dev/null", "/x"), "device file"),
        "podman socket dir": ({"allowed_mount_paths": [runtime]}, Mount(f"{runtime}/podman", "/x"),
                              "Podman API socket"),
        "podman socket": ({"allowed_mount_paths": [runtime]}, Mount(f"{runtime}/podman/podman.sock", "/x"),
                          "socket"),
        "writable": ({"allowed_mount_paths": [str(allowed)]}, Mount(str(allowed), "/x", read_only=False),
                     "read-only mounts only"),
        "target proc": ({"allowed_mount_paths": [str(allowed)]}, Mount(str(allowed), "/proc/x"), "/proc"),
    }


@pytest.mark.parametrize("case", ["outside", "symlink escape", "dot-dot", "device", "podman socket dir",
                                  "podman socket", "writable", "target proc"])
def test_a_refused_mount_never_creates_a_container(case, tmp_path, podman_url, podman_api):
    security, mount, message = _refusals(tmp_path)[case]
    with CleanroomEnvironment(_strict(**security), url=podman_url, audit_dir=tmp_path / "audit") as env:
        with pytest.raises(PolicyError, match=message):
            env.run(BUSYBOX, ["/bin/true"], mounts=[mount])
        # Nothing of this environment exists in Podman: the refusal came before create.
        assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []
        events = [e for e in env.get_logs() if "mount.refused" in e]
        # And the environment still works: the reservation was given back.
        assert env.run(BUSYBOX, ["/bin/true"]).exit_code == 0
    assert events, "the refusal is in the environment's events"
    assert "mount.refused" in (tmp_path / "audit").joinpath(next(os.walk(tmp_path / "audit"))[2][0]).read_text()


def test_stdin_round_trips_bytes_and_files(tmp_path, podman_url):
    payload = os.urandom(300_000)  # more than a pipe holds: the feed must not block the output
    with CleanroomEnvironment(_strict(), url=podman_url, audit_dir=tmp_path / "audit") as env:
        digest = env.run(BUSYBOX, ["/bin/sh", "-c", "sha256sum; echo done"], stdin=payload)
        lines = env.run(BUSYBOX, ["/bin/sh", "-c", "wc -l; cat"], stdin=io.BytesIO(b"a\nb\nc\n"))
        empty = env.run(BUSYBOX, ["/bin/cat"], stdin=b"")
    assert digest.exit_code == 0, digest.stderr
    assert digest.stdout.split()[0] == hashlib.sha256(payload).hexdigest()
    assert digest.stdout.split()[-1] == "done"  # EOF came: sha256sum finished and the shell went on
    assert lines.stdout == "3\n"  # wc read to the end; cat then saw EOF at once
    assert empty.exit_code == 0 and empty.stdout == ""


def test_cli_mounts_workdir_and_stdin_with_the_default_project_directory():
    # The CLI runs from the repository: the default allowed path is that directory.
    proc = cleanroom_cli("run", "--policy", str(STRICT), "-v", "examples/app:/src", "-w", "/src", "-i",
                         BUSYBOX, "--", "/bin/sh", "-c", "pwd; ls; tr a-z A-Z", input="piped in\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "/src"
    assert "users.py" in lines
    assert lines[-1] == "PIPED IN"


def test_cli_refuses_a_path_outside_the_project_with_exit_2(podman_api):
    proc = cleanroom_cli("run", "--policy", str(STRICT), "-v", "/etc:/etc2", BUSYBOX, "--", "/bin/true")
    assert proc.returncode == 2, proc.stderr
    assert "allowed_mount_paths" in proc.stderr and "outside the allowed paths" in proc.stderr


def test_the_example_apps_make_test_sandboxed():
    # The Makefile target `make demo` shows: the repository mounted read-only, /tmp writable.
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO / "examples" / "app"), "test-sandboxed",
                           f"CLEANROOM={sys.executable} -m sandbox.cli"], capture_output=True, text=True,
                          timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("cleanroom: exit 0")
