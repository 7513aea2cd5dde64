"""Images a user brings, against real rootless Podman and a real registry on 127.0.0.1.

The registry is Debian's docker-registry, started by the fixture with TLS (a
throw-away certificate that Podman trusts through the user's certs.d, read at each
pull), its PID kept and stopped by that PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from podman_helpers import BUSYBOX, REPO, cleanroom_cli

from sandbox import CleanroomConfig, CleanroomEnvironment, ContainerError, PolicyError
from sandbox.engine.images import for_images

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the registry exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the registry did not listen")


class Registry:
    def __init__(self, root: Path) -> None:
        assert os.path.exists(REGISTRY_BIN), "apt-get install docker-registry (scripts/setup-host.sh does)"
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.root = root
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"), "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        (root / "config.yml").write_text(
            f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
            f"http:\n  addr: {self.host}\n  tls:\n    certificate: {root / 'cert.pem'}\n    key: {root / 'key.pem'}\n")
        self.certs = Path.home() / ".config" / "containers" / "certs.d" / self.host
        self.certs.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "cert.pem", self.certs / "ca.crt")
        self.log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        _wait_port(self.port, self.proc)

    def requests_for(self, path: str) -> int:
        return (self.root / "registry.log").read_text(errors="replace").count(path)

    def stop(self) -> None:
        os.kill(self.pid, 15)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, 9)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.certs, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


def _config(tmp_path, registry, **security) -> CleanroomConfig:
    config = CleanroomConfig.from_file(REPO / "policies" / "strict.toml")
    sp = msgspec.structs.replace(config.security_policy, allowed_registries=[f"{registry.host}/cleanroom"],
                                 allowed_mount_paths=[str(tmp_path)], **security)
    return config.with_changes(security_policy=sp)


def _podman(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    """An image built through cleanroom (FROM the local busybox, offline), pushed to the
    registry and removed locally: (remote reference, its digest, the build's output)."""
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "blob.bin").write_bytes(os.urandom(1 << 20))  # a layer no local image has
    (ctx / "Containerfile").write_text(f"FROM {BUSYBOX}\nRUN echo 'password=built-secret-value'\n"
                                       "COPY blob.bin /blob.bin\nCMD [\"/bin/echo\", \"pulled image runs\"]\n")
    local = f"localhost/cleanroom/test-build:{uuid.uuid4().hex[:8]}"
    lines: list[str] = []
    config = CleanroomConfig.from_file(REPO / "policies" / "strict.toml")
    with CleanroomEnvironment(for_images(config), audit_dir=ctx / "audit", confine=False) as env:
        built = env.images.build(ctx, tag=local, on_output=lines.append)
    remote = f"{registry.host}/cleanroom/test:{uuid.uuid4().hex[:8]}"
    digest_file = ctx / "digest"
    push = _podman("push", "--digestfile", str(digest_file), local, remote)
    assert push.returncode == 0, push.stderr
    _podman("rmi", "-f", local, remote)
    yield remote, digest_file.read_text().strip(), built, "".join(lines)
    _podman("rmi", "-f", remote)


def test_build_streams_redacted_output_and_ends_with_the_image_id(pushed):
    _, _, built, output = pushed
    assert "STEP 1/4: FROM localhost/cleanroom/busybox:latest" in output
    assert "built-secret-value" not in output and "[REDACTED:" in output
    assert len(built.id) == 64 and output.strip().splitlines()[-1] == built.id  # the build ends with its id


def test_pull_with_progress_and_the_digest(pushed, tmp_path, registry):
    remote, digest, _, _ = pushed
    events = []
    with CleanroomEnvironment(_config(tmp_path, registry), audit_dir=tmp_path / "audit") as env:
        image = env.images.pull(remote, progress=events.append)
        run = env.run(remote, None)
        audit = env.audit_path.read_text()
    assert events, "no progress was reported"
    last = events[-1]
    assert last.layers >= 1 and last.layers_done == last.layers and last.status == "stored"
    assert any(e.layers_done < e.layers for e in events)  # progress was seen before the end
    assert last.bytes_total >= 1 << 20 and last.bytes_done == last.bytes_total  # busybox and our 1 MiB layer
    assert image.digest == digest
    assert run.stdout == "pulled image runs\n"
    assert '"image.pulled"' in audit and digest in audit
    _podman("rmi", "-f", remote)


def test_a_missing_image_is_pulled_by_run_and_a_pinned_digest_must_match(pushed, tmp_path, registry):
    remote, digest, _, _ = pushed
    name = remote.rsplit(":", 1)[0]
    events = []
    with CleanroomEnvironment(_config(tmp_path, registry), audit_dir=tmp_path / "audit") as env:
        env.pull_progress = events.append
        assert env.run(f"{name}@{digest}", None).stdout == "pulled image runs\n"
        assert events and events[-1].layers_done >= 1
        wrong = "sha256:" + "0" * 64
        with pytest.raises(ContainerError):
            env.run(f"{name}@{wrong}", ["/bin/true"])
    _podman("rmi", "-f", f"{name}@{digest}")


def test_a_refused_registry_is_refused_before_any_network_call(pushed, tmp_path, registry):
    with CleanroomEnvironment(_config(tmp_path, registry), audit_dir=tmp_path / "audit") as env:
        for ref in (f"{registry.host}/elsewhere/test:1", "docker.io/library/alpine:3", "alpine"):
            with pytest.raises(PolicyError, match="allowed_registries"):
                env.images.pull(ref)
    assert registry.requests_for("/v2/elsewhere") == 0  # the registry never heard of it


def test_cli_pull_shows_progress_and_prints_the_id(pushed, tmp_path, registry):
    remote, _, _, _ = pushed
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[cleanroom.security_policy]\nallowed_registries = ["{registry.host}/cleanroom"]\n'
                      f'audit_log_dir = "{tmp_path / "audit"}"\n')
    proc = cleanroom_cli("images", "pull", "--policy", str(policy), remote, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pulling " + remote in proc.stderr and "MiB" in proc.stderr
    assert "layers 0/1" in proc.stderr or "layers 1/2" in proc.stderr  # a line before the end
    assert len(proc.stdout.strip()) == 64
    refused = cleanroom_cli("images", "pull", "--policy", str(policy), "docker.io/library/alpine:3")
    assert refused.returncode == 2 and "allowed_registries" in refused.stderr
    _podman("rmi", "-f", remote)


CLI_TOKEN = "q8Zt3LmX9vRk2WpN7cYf4HsJ6dBg1TeA"


def test_cli_build_with_a_tag(tmp_path):
    # A token shaped like a real one (random, long): the redactor's generic rule masks it.
    (tmp_path / "Dockerfile.test").write_text(f"FROM {BUSYBOX}\nRUN echo token={CLI_TOKEN}\n")
    tag = f"localhost/cleanroom/test-cli-build:{uuid.uuid4().hex[:8]}"
    proc = cleanroom_cli("images", "build", "-t", tag, "-f", str(tmp_path / "Dockerfile.test"), str(tmp_path))
    try:
        assert proc.returncode == 0, proc.stderr
        assert CLI_TOKEN not in proc.stderr + proc.stdout and "STEP 2/2" in proc.stderr
        assert len(proc.stdout.strip()) == 64
    finally:
        _podman("rmi", "-f", tag)
