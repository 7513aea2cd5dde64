"""Images whose USER is not root, under cgroup confinement (real rootless Podman).

The sandbox is placed while it still runs as the container's root, then
cleanroom-helper switches to the image's user (or the one asked for)."""

from __future__ import annotations

import subprocess

import pytest
from podman_helpers import BUSYBOX, REPO, cleanroom_cli

from sandbox import CleanroomConfig, CleanroomEnvironment

STRICT = REPO / "policies" / "strict.toml"
USER_1000 = "localhost/cleanroom/test-user1000:latest"
USER_NOBODY = "localhost/cleanroom/test-nobody:latest"


def _build(tag: str, containerfile: str, context) -> None:
    (context / "Containerfile").write_text(containerfile)
    subprocess.run(["podman", "build", "-q", "-t", tag, "-f", str(context / "Containerfile"), str(context)],
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def user_images(tmp_path_factory):
    ctx = tmp_path_factory.mktemp("user-images")
    _build(USER_1000, f"FROM {BUSYBOX}\nUSER 1000\nCMD [\"/bin/sh\", \"-c\", \"id -u; id -g\"]\n", ctx)
    _build(USER_NOBODY, f"FROM {BUSYBOX}\nUSER nobody\n", ctx)
    yield
    subprocess.run(["podman", "rmi", "-f", USER_1000, USER_NOBODY], capture_output=True, timeout=60)


@pytest.fixture
def strict_env(tmp_path, podman_url):
    with CleanroomEnvironment(CleanroomConfig.from_file(STRICT), url=podman_url, audit_dir=tmp_path / "a") as env:
        yield env


def test_a_user_1000_image_runs_confined_as_1000(user_images, strict_env):
    probe = "id -u; id -g; grep -E 'CapEff|NoNewPrivs' /proc/self/status; grep memory /proc/self/cgroup"
    r = strict_env.run(USER_1000, ["/bin/sh", "-c", probe])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert lines[2].split()[1] == "0000000000000000"  # no capability left
    assert lines[3].split()[1] == "1"
    assert strict_env.id in lines[4], "not in the environment's cgroup"
    assert r.usage.peak_memory_bytes and r.usage.memory_limit_bytes == 256 * 1024 * 1024


def test_the_images_own_command_runs_as_its_user(user_images, strict_env):
    r = strict_env.run(USER_1000, None)
    assert r.stdout == "1000\n1000\n", r.stderr


def test_a_named_user_and_an_asked_for_user(user_images, strict_env):
    nobody = strict_env.run(USER_NOBODY, ["/bin/sh", "-c", "id -un; id -u"])
    asked = strict_env.run(BUSYBOX, ["/bin/sh", "-c", "id -u; id -g"], user="4242:4343")
    assert nobody.stdout == "nobody\n65534\n", nobody.stderr
    assert asked.stdout == "4242\n4343\n", asked.stderr


def test_a_user_1000_image_in_a_session(user_images, strict_env):
    with strict_env.session(USER_1000) as sb:
        assert sb.exec(["/bin/id", "-u"]).stdout == "1000\n"
        assert sb.exec(["/bin/id", "-u"], user="0").stdout == "0\n"


def test_cli_user_flag():
    proc = cleanroom_cli("run", "--policy", str(STRICT), "-u", "65534", BUSYBOX, "--", "/bin/id", "-u")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "65534\n"
