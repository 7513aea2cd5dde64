"""Images without Podman: which pulls the policy allows (before any call), progress
folding, digest pinning, build context and network, through the fake engine."""

from __future__ import annotations

import msgspec
import pytest
from fake_podman import FakePodman

from sandbox.engine.images import Images, check_pull, registry_of
from sandbox.engine.podman.api import ImageConfig
from sandbox.errors import ContainerError, ContainerNotFound, PolicyError
from sandbox.policy import CleanroomConfig

DIGEST = "sha256:" + "a" * 64


def _config(*allowed: str, **security) -> CleanroomConfig:
    c = CleanroomConfig.default()
    return c.with_changes(security_policy=msgspec.structs.replace(c.security_policy, allowed_registries=list(allowed),
                                                                  **security))


@pytest.mark.parametrize("ref,registry", [("docker.io/library/alpine:3", "docker.io"), ("alpine", None),
                                          ("library/alpine", None), ("localhost/x:1", "localhost"),
                                          ("127.0.0.1:5000/a/b@" + DIGEST, "127.0.0.1:5000")])
def test_registry_of(ref, registry):
    assert registry_of(ref) == registry


def test_only_listed_registries_and_prefixes_may_be_pulled():
    cfg = _config("ghcr.io/acme", "127.0.0.1:5000")
    assert check_pull(cfg, "ghcr.io/acme/app:1") == "ghcr.io"
    assert check_pull(cfg, "127.0.0.1:5000/any/thing") == "127.0.0.1:5000"
    for ref in ("ghcr.io/other/app:1", "ghcr.io/acmeevil/app", "docker.io/library/alpine", "alpine", "localhost/x"):
        with pytest.raises(PolicyError, match="allowed_registries|short name|localhost"):
            check_pull(cfg, ref)
    with pytest.raises(PolicyError, match="no registry"):
        check_pull(_config(), "docker.io/library/alpine")


def _images(fake: FakePodman, cfg: CleanroomConfig, audit: list) -> Images:
    return Images(fake, cfg, lambda event, level="Minimal", **d: audit.append((event, d)), lambda s: s.replace(
        "hunter2", "[REDACTED]"))


def test_a_refused_pull_makes_no_engine_call():
    fake, audit = FakePodman(), []
    fake.missing_images.add("docker.io/library/alpine:3")
    with pytest.raises(PolicyError):
        _images(fake, _config("ghcr.io"), audit).ensure("docker.io/library/alpine:3")
    assert "pull" not in fake.log and audit[0][0] == "image.refused"


def test_a_missing_localhost_image_is_not_pulled():
    fake = FakePodman()
    fake.missing_images.add("localhost/app:1")
    with pytest.raises(ContainerNotFound, match="never pulled"):
        _images(fake, _config("ghcr.io"), []).ensure("localhost/app:1")
    assert "pull" not in fake.log


def test_progress_folds_layer_events_and_ends_with_the_stored_size():
    fake, events = FakePodman(), []
    fake.pull_events = [{"status": "Pulling fs layer", "progressDetail": {}, "id": "l1"},
                        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "l1"},
                        {"status": "Pulling fs layer", "progressDetail": {}, "id": "l2"},
                        {"status": "Download complete", "progressDetail": {}, "id": "l1"}]
    fake.images["ghcr.io/a/b:1"] = ImageConfig(id="i", size=4096)
    _images(fake, _config("ghcr.io"), []).pull("ghcr.io/a/b:1", progress=events.append)
    assert [(e.layers, e.layers_done, e.bytes_done, e.bytes_total) for e in events] == [
        (1, 0, 0, 0), (1, 0, 10, 100), (2, 0, 10, 100), (2, 1, 100, 100), (2, 2, 4096, 4096)]


def test_libpod_lines_count_layers():
    fake, events = FakePodman(), []
    fake.pull_events = [{"stream": "Copying blob sha256:aa\n"}, {"stream": "Copying blob sha256:bb\n"},
                        {"stream": "Writing manifest to image destination\n"}]
    _images(fake, _config("ghcr.io"), []).pull("ghcr.io/a/b:1", progress=events.append, tls_verify=False)
    assert events[1].layers == 2


def test_a_pinned_digest_must_match_even_for_a_local_image():
    fake, audit = FakePodman(), []
    good, bad = f"ghcr.io/a/b@{DIGEST}", "ghcr.io/a/b@sha256:" + "b" * 64
    fake.images[good] = ImageConfig(id="i", repo_digests=[f"ghcr.io/a/b@{DIGEST}"])
    fake.images[bad] = ImageConfig(id="i", digest=DIGEST)
    images = _images(fake, _config("ghcr.io"), audit)
    images.ensure(good)
    with pytest.raises(ContainerError, match="not the pinned"):
        images.ensure(bad)
    fake.missing_images.add(bad)
    fake.images.pop(bad)
    fake.pulled_digest = DIGEST
    with pytest.raises(ContainerError, match="not the pinned"):
        images.ensure(bad)


def test_build_sends_the_context_redacts_output_and_runs_steps_without_network(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM x\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print(1)\n")
    fake, lines, audit = FakePodman(), [], []
    fake.build_output = ["STEP 1/1: RUN echo hunter2\n"]
    image = _images(fake, _config(), audit).build(tmp_path, tag="localhost/t:1", on_output=lines.append)
    assert image.id == "sha256:built" and lines == ["STEP 1/1: RUN echo [REDACTED]\n"]
    sent = fake.built["localhost/t:1"]
    assert sent["network"] == "none" and b"src/a.py" in sent["context"] and b"Containerfile" in sent["context"]
    assert audit[-1][0] == "image.built"
    with pytest.raises(ContainerError, match="no Nope"):
        _images(fake, _config(), audit).build(tmp_path, tag="t", containerfile="Nope")
