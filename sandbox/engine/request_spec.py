"""A create request, judged and translated: its mounts checked against the policy
(refusals audited), then the libpod spec built (network refusals audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from sandbox.engine.mounts import check_mounts, engine_sockets
from sandbox.engine.spec import build_spec
from sandbox.engine.types import AuditFn, CreateRequest, NetworkAttachment
from sandbox.errors import NetworkPolicyViolation, PolicyError

if TYPE_CHECKING:
    from sandbox.policy.config import CleanroomConfig


def spec_for(config: CleanroomConfig, request: CreateRequest, audit: AuditFn, engine_url: str) -> dict[str, Any]:
    network: str | tuple[str, list[str]] | None = (
        (request.network.name, list(request.network.aliases))
        if isinstance(request.network, NetworkAttachment) else request.network)
    try:
        mounts = check_mounts(config, request.mounts, sockets=engine_sockets(engine_url))
    except PolicyError as exc:
        audit("mount.refused", "High", sandbox=request.name, reason=str(exc))
        raise
    # cleanroom's own writable mounts (an attachment's, e.g. coverage data) are audited with the user's.
    internal = [m for m in request.system_mounts if not m.read_only]
    if mounts or internal:
        audit("sandbox.mounts", "Medium", sandbox=request.name, mounts=msgspec.to_builtins(mounts),
              **({"internal": msgspec.to_builtins(internal)} if internal else {}))
    try:
        return build_spec(config, request.image, request.command, env=request.env, labels=request.labels,
                          name=request.name, ports=request.ports or None, network=network,
                          writable_paths=request.writable_paths, user=request.user, mounts=mounts,
                          workdir=request.workdir, stdin=request.stdin, system_mounts=request.system_mounts,
                          extra_caps=request.extra_caps, entrypoint=request.entrypoint,
                          clock=request.kind == "sandbox", keep_log=request.keep_log)
    except NetworkPolicyViolation as exc:
        audit("network.refused", "High", sandbox=request.name, reason=str(exc))
        raise
