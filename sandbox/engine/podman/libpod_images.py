"""The libpod image calls: inspect (what an image runs, its digest), and build and pull
with their streamed progress. Mixed into ``LibpodAPI``, whose ``_request`` turns every
HTTP failure into a redacted ``CleanroomError``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from requests import Response

from sandbox.engine.podman.api import ImageConfig
from sandbox.errors import ContainerError, ContainerNotFound

_LONG = 3600.0  # a build or pull streams for as long as it works


def _from_image(reference: str) -> dict[str, str]:
    """The compat endpoint's fromImage/tag pair (a digest reference goes whole)."""
    if "@" in reference:
        return {"fromImage": reference}
    repo, _, last = reference.rpartition("/")
    name, sep, tag = last.partition(":")
    return {"fromImage": f"{repo}/{name}" if repo else name, "tag": tag if sep else "latest"}


class ImageCalls:
    url: str
    _redact: Callable[[str], str]
    _request: Callable[..., Response]

    def image_config(self, reference: str) -> ImageConfig:
        try:
            data = self._request("get", f"/images/{quote(reference, safe='')}/json", "image inspect").json()
        except ContainerNotFound:
            raise ContainerNotFound(f"image {reference} not found in this user's Podman storage: pull it "
                                    "(`cleanroom images pull`) or build it (`cleanroom images build`)") from None
        config = data.get("Config") or {}
        return ImageConfig(id=str(data.get("Id", "")), user=str(config.get("User") or ""),
                           entrypoint=config.get("Entrypoint") or None, cmd=config.get("Cmd") or None,
                           workdir=str(config.get("WorkingDir") or ""), digest=str(data.get("Digest") or ""),
                           repo_digests=[str(d) for d in data.get("RepoDigests") or []],
                           size=int(data.get("Size") or 0))

    # -- build and pull: JSON lines streamed as they come ---------------------------------
    def _lines(self, resp: Any, what: str) -> Iterator[dict[str, Any]]:
        try:
            for raw in resp.iter_lines():
                if not raw:
                    continue
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                if item.get("error"):
                    raise ContainerError(f"{what} failed: {self._redact(str(item['error']))[:500]}")
                yield item
        finally:
            resp.close()

    def build_image(self, context: bytes, *, containerfile: str, tag: str, network: str | None,
                    on_line: Callable[[str], None]) -> None:
        """Build from a tar of the context; every output line goes to ``on_line`` (unredacted:
        the caller redacts)."""
        params: dict[str, Any] = {"dockerfile": containerfile, "t": tag, "rm": True}
        if network:
            params["networkmode"] = network
        resp = self._request("post", "/build", "image build", params=params, data=context, stream=True,
                             headers={"content-type": "application/x-tar"}, timeout=_LONG)
        for item in self._lines(resp, "image build"):
            if "stream" in item:
                on_line(str(item["stream"]))

    def pull_image(self, reference: str, *, tls_verify: bool, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Pull into local storage. With TLS verified, the Docker-compatible endpoint, whose
        events carry bytes per layer; without, libpod's (the only one taking tlsVerify,
        whose events name layers but not bytes)."""
        if tls_verify:
            params = _from_image(reference)
            resp = self._request("post", "/images/create", "image pull", params=params, stream=True,
                                 compatible=True, timeout=_LONG)
        else:
            resp = self._request("post", "/images/pull", "image pull", stream=True, timeout=_LONG,
                                 params={"reference": reference, "tlsVerify": False, "quiet": False})
        for item in self._lines(resp, f"pulling {reference}"):
            on_event(item)

    def remove_image(self, reference: str, *, force: bool = False) -> None:
        try:
            self._request("delete", f"/images/{quote(reference, safe='')}", "image remove", params={"force": force})
        except ContainerNotFound:
            pass
