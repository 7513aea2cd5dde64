"""The libpod image calls: inspect (what an image runs, its digest), and build and pull
with their streamed progress. Mixed into ``LibpodAPI``, whose ``_request`` turns every
HTTP failure into a redacted ``CleanroomError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sandbox.engine.api import ImageConfig
from sandbox.errors import ContainerNotFound


class ImageCalls:
    url: str
    _redact: Callable[[str], str]
    _request: Callable[..., Any]

    def image_config(self, reference: str) -> ImageConfig:
        try:
            data = self._request("get", f"/images/{quote(reference, safe='')}/json", "image inspect").json()
        except ContainerNotFound:
            raise ContainerNotFound(f"image {reference} not found in this user's Podman storage: pull it "
                                    "(`cleanroom images pull`) or build it (`cleanroom images build`)") from None
        config = data.get("Config") or {}
        return ImageConfig(id=str(data.get("Id", "")), user=str(config.get("User") or ""),
                           entrypoint=config.get("Entrypoint") or None, cmd=config.get("Cmd") or None,
                           workdir=str(config.get("WorkingDir") or ""), digest=str(data.get("Digest") or ""))
