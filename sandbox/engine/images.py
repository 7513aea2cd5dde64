"""Images a user brings: built from a Containerfile, or pulled through the engine.

The policy decides before any network call: a pull names its registry in full (no
short names: which registry a short name means is the host's setting, not the
policy's), and that registry must be in ``allowed_registries`` (``localhost`` names
are local only and never pulled). A reference pinned by digest (``name@sha256:…``)
must arrive as exactly that digest. Build output passes the redactor like all output.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sandbox.engine.podman.api import ImageConfig, PodmanAPI
from sandbox.engine.spec import network_mode
from sandbox.engine.types import AuditFn
from sandbox.errors import ContainerError, ContainerNotFound, PolicyError

if TYPE_CHECKING:
    from sandbox.policy.config import CleanroomConfig

_KEY = "cleanroom.security_policy.allowed_registries"
_RECENT_SECONDS = 1.0
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


class PullProgress(msgspec.Struct, kw_only=True):
    """Where a pull stands: layers seen and done, bytes of the total, the latest status.

    Podman 4.3 reports each layer's start and completion but no byte counts on either
    pull endpoint (measured), so until the last event the bytes are whatever the engine
    reported (0 there); the last event carries the image's stored size as both."""

    reference: str
    layers: int = 0
    layers_done: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    status: str = ""
    layer: str = ""


def registry_of(reference: str) -> str | None:
    """The registry a fully qualified reference names; None for a short name."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def check_pull(policy: CleanroomConfig, reference: str) -> str:
    """The registry, if the policy lets ``reference`` be pulled; PolicyError otherwise."""
    registry = registry_of(reference)
    allowed = list(policy.security_policy.allowed_registries)
    where = policy.source_file
    if registry is None:
        raise PolicyError(f"{reference!r} is a short name: name its registry in full (e.g. docker.io/library/"
                          f"{reference}) so the policy can judge it", file=where, key=_KEY)
    if registry == "localhost":
        raise PolicyError(f"{reference} is a local name: localhost images are built, never pulled", file=where,
                          key=_KEY)
    if not any(reference == a or reference.startswith(a.rstrip("/") + "/") or registry == a for a in allowed):
        raise PolicyError(f"pulling from {registry} is not allowed by the policy", file=where, key=_KEY,
                          allowed=", ".join(allowed) or "no registry (allowed_registries is empty)")
    return registry


class _Progress:
    """Folds the engine's pull events into one PullProgress (both endpoints' shapes)."""

    def __init__(self, reference: str, callback: Callable[[PullProgress], None] | None) -> None:
        self.state = PullProgress(reference=reference)
        self._callback = callback
        self._layers: dict[str, tuple[int, int, bool]] = {}  # id → (current, total, done)

    def event(self, item: dict[str, Any]) -> None:
        s = self.state
        if "stream" in item:  # libpod's endpoint: lines only
            line = str(item["stream"]).strip()
            s.status = line
            if line.startswith("Copying blob"):
                layer = line.split()[2] if len(line.split()) > 2 else line
                self._layers[layer] = (0, 0, True)
        elif "status" in item:
            layer = str(item.get("id") or "")
            s.status, s.layer = str(item["status"]), layer
            detail = item.get("progressDetail") or {}
            current, total, done = self._layers.get(layer, (0, 0, False))
            if "current" in detail:
                current, total = int(detail.get("current") or 0), int(detail.get("total") or total)
            if s.status in ("Download complete", "Pull complete", "Already exists"):
                done, current = True, max(current, total)
            if layer:
                self._layers[layer] = (current, total, done)
        s.layers = len(self._layers)
        s.layers_done = sum(1 for _, _, d in self._layers.values() if d)
        s.bytes_done = sum(c for c, _, _ in self._layers.values())
        s.bytes_total = sum(t for _, t, _ in self._layers.values())
        self._emit()

    def finish(self, size: int) -> None:
        s = self.state
        s.layers_done = s.layers
        s.bytes_done = s.bytes_total = max(size, s.bytes_total)
        s.status = "stored"
        self._emit()

    def _emit(self) -> None:
        if self._callback is not None:
            self._callback(msgspec.structs.replace(self.state))


def for_images(config: CleanroomConfig) -> CleanroomConfig:
    """The policy for an environment that only builds and pulls: it runs no sandbox, so
    there is nothing to monitor (monitoring needs confined sandboxes to sample)."""
    pm = msgspec.structs.replace(config.performance_monitoring, enable_monitoring=False,
                                 enable_memory_tracking=False, enable_profiling=False)
    return config.with_changes(enable_monitoring=False, performance_monitoring=pm)


class Images:
    """An environment's images: ensure (pull what is missing), pull, build."""

    def __init__(self, api: PodmanAPI, policy: CleanroomConfig, audit: AuditFn, redact: Callable[[str], str]) -> None:
        self._api = api
        self._policy = policy
        self._audit = audit
        self._redact = redact
        self._recent: dict[str, tuple[float, ImageConfig]] = {}

    def image_config(self, reference: str) -> ImageConfig:
        """The image's config, looked up at most once per ``_RECENT_SECONDS``: a run asks
        twice (is it here? whose USER?), and a tight loop of runs asks for the same image;
        an image removed meanwhile makes the create fail with Podman's own error."""
        now = time.monotonic()
        hit = self._recent.get(reference)
        if hit is not None and now - hit[0] < _RECENT_SECONDS:
            return hit[1]
        image = self._api.image_config(reference)
        if len(self._recent) > 64:
            self._recent.clear()
        self._recent[reference] = (now, image)
        return image

    def ensure(self, reference: str, progress: Callable[[PullProgress], None] | None = None) -> None:
        """Nothing when the image is local (a pinned digest checked); else pull it."""
        try:
            image = self.image_config(reference)
        except ContainerNotFound:
            pass
        else:
            if _DIGEST.search(reference):
                self._check_digest(reference, image)
            return
        if registry_of(reference) == "localhost":
            raise ContainerNotFound(f"image {reference} not found in this user's Podman storage (localhost names are "
                                    "never pulled): build it with `cleanroom images build` or `make images`")
        self.pull(reference, progress=progress)

    def pull(self, reference: str, *, progress: Callable[[PullProgress], None] | None = None,
             tls_verify: bool = True) -> ImageConfig:
        try:
            registry = check_pull(self._policy, reference)
        except PolicyError as exc:
            self._audit("image.refused", "High", reference=reference, reason=str(exc))
            raise
        folded = _Progress(reference, progress)
        self._recent.pop(reference, None)
        self._api.pull_image(reference, tls_verify=tls_verify, on_event=folded.event)
        image = self._api.image_config(reference)
        self._check_digest(reference, image)
        folded.finish(image.size)
        self._audit("image.pulled", "Medium", reference=reference, registry=registry, image_id=image.id,
                    digest=image.digest, bytes=folded.state.bytes_done, layers=folded.state.layers)
        return image

    def _check_digest(self, reference: str, image: ImageConfig) -> None:
        pinned = _DIGEST.search(reference)
        if pinned and pinned.group(1) not in (image.digest, *(d.rpartition("@")[2] for d in image.repo_digests)):
            self._audit("image.refused", "High", reference=reference, reason="digest mismatch", digest=image.digest)
            raise ContainerError(f"{reference}: the image has digest {image.digest or 'unknown'}, not the pinned "
                                 f"{pinned.group(1)}; it was not used")

    def build(self, context_dir: str | os.PathLike[str], *, tag: str, containerfile: str = "Containerfile",
              on_output: Callable[[str], None] | None = None) -> ImageConfig:
        """Build ``tag`` from ``context_dir``; output lines, redacted, go to ``on_output``."""
        context = Path(context_dir)
        if not (context / containerfile).is_file():
            raise ContainerError(f"no {containerfile} in {context}: pass -f with its path inside the context")
        data = tar_context(context)

        def line(text: str) -> None:
            if on_output is not None:
                on_output(self._redact(text))

        # RUN steps get the policy's network: none unless the policy allows egress.
        network = "none" if network_mode(self._policy) == "none" else None
        self._recent.pop(tag, None)
        self._api.build_image(data, containerfile=containerfile, tag=tag, network=network, on_line=line)
        image = self._api.image_config(tag)
        self._audit("image.built", "Medium", tag=tag, image_id=image.id, context_bytes=len(data))
        return image


def tar_context(context: Path) -> bytes:
    """The build context as a tar (links kept as links, as Podman's own client sends it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(context.iterdir()):
            tar.add(str(entry), arcname=entry.name, recursive=True)
    return buf.getvalue()
