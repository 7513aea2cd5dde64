"""Translate a typed policy into a libpod container spec (SpecGenerator JSON).

Pure functions: no I/O, so every mapping is unit-tested without Podman.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.confine.seccomp import profile_for
from sandbox.engine.faketime import frozen_clock
from sandbox.engine.mounts import bind_entries
from sandbox.engine.types import Mount
from sandbox.errors import NetworkPolicyViolation
from sandbox.policy import Isolation, effective_isolation
from sandbox.policy.isolation import tmpfs_sizes

if TYPE_CHECKING:
    from sandbox.policy.config import CleanroomConfig

# Deterministic execution pins what commonly leaks the host into output.
_DETERMINISTIC_ENV = {"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
DEFAULT_HOSTNAME = "cleanroom"


def _iso(policy: CleanroomConfig) -> Isolation:
    return effective_isolation(policy.security_policy)


def network_mode(policy: CleanroomConfig) -> str:
    iso = _iso(policy)
    return getattr(iso, "network_mode", None) or (
        "none" if policy.security_policy.enable_network_isolation else "egress"
    )


def check_ports(policy: CleanroomConfig, ports: dict[int, int | None] | None) -> None:
    """Refuse any published port the policy does not allow, before anything is made."""
    if not ports:
        return
    allowed = set(policy.security_policy.allowed_ports)
    for container_port in ports:
        if int(container_port) not in allowed:
            raise NetworkPolicyViolation(
                f"publishing port {container_port} is not allowed by the policy "
                f"(cleanroom.security_policy.allowed_ports = {sorted(allowed)})"
            )


def build_spec(
    policy: CleanroomConfig,
    image: str,
    command: list[str] | None,
    *,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    name: str | None = None,
    ports: dict[int, int | None] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    network: str | tuple[str, list[str]] | None = None,
    writable_paths: list[str] | dict[str, int] | None = None,
    mounts: list[Mount] | None = None,
    stdin: bool = False,
    system_mounts: list[Mount] | None = None,
    extra_caps: list[str] | None = None,
    entrypoint: list[str] | None = None,
    clock: bool = True,
    keep_log: bool = True,
) -> dict[str, Any]:
    """The create body for one sandbox.

    ``ports`` maps container port to host port (None: a free one); they are always
    bound to 127.0.0.1. ``network`` overrides the policy's mode for services that
    must be reachable (a published port needs a network namespace with slirp4netns),
    or is ``(network name, aliases)`` to join an environment's private network.
    ``mounts`` are host paths already checked against the policy (``sandbox.engine.mounts``);
    ``system_mounts`` are cleanroom's own (its static helpers, read-only; an attachment's, such
    as the coverage data directory, writable where cleanroom set ``read_only=False``) and
    ``extra_caps`` what the helper needs until it drops them.
    ``clock=False`` leaves out the policy's frozen clock (services keep the real one);
    ``keep_log=False``: no log driver (attach still sees the output).
    """
    check_ports(policy, ports)
    iso = _iso(policy)
    limits = policy.resource_limits.sandbox

    spec: dict[str, Any] = {"image": image, "labels": dict(labels or {})}
    if command:
        spec["command"] = list(command)
    if name:
        spec["name"] = name
    if workdir:
        spec["work_dir"] = workdir
    if user:
        spec["user"] = user
    if stdin:
        spec["stdin"] = True
    if not keep_log:
        spec["log_configuration"] = {"driver": "none"}
    if entrypoint is not None:
        spec["entrypoint"] = list(entrypoint)
    # System mounts never come from user input (sandbox.engine.attachment): read_only stands as given.
    mounts = list(mounts or []) + list(system_mounts or [])

    environment: dict[str, str] = {}
    if policy.enable_deterministic_execution:
        environment.update(_DETERMINISTIC_ENV)
        seed = policy.deterministic_seed if policy.deterministic_seed is not None else 0
        environment["CLEANROOM_SEED"] = str(seed)
        environment["PYTHONHASHSEED"] = str(seed)
        spec["hostname"] = DEFAULT_HOSTNAME
    # Internal read-only mounts (the frozen clock's library), added after the tmpfs ones.
    internal_mounts: list[dict[str, Any]] = []
    if policy.enable_deterministic_execution and policy.deterministic_clock and clock:
        mount, clock_env = frozen_clock(policy.deterministic_clock)
        environment.update(clock_env)
        internal_mounts.append(mount)
    environment.update(env or {})
    if environment:
        spec["env"] = environment

    if isinstance(network, tuple):
        # The environment's private network: a bridge where its members resolve each
        # other by alias; published ports still go to 127.0.0.1 only.
        net_name, aliases = network
        spec["netns"] = {"nsmode": "bridge"}
        spec["networks"] = {net_name: {"aliases": list(aliases)}}
    else:
        mode = network or network_mode(policy)
        if ports and mode == "none":
            mode = "egress"  # a published port needs a namespace with a userspace stack
        if mode == "none":
            spec["netns"] = {"nsmode": "none"}
        else:
            spec["netns"] = {"nsmode": "slirp4netns"}
            if policy.security_policy.allow_host_loopback:
                spec["network_options"] = {"slirp4netns": ["allow_host_loopback=true"]}
    if ports:
        spec["portmappings"] = [
            {"container_port": int(cp), "host_port": int(hp or 0), "host_ip": "127.0.0.1", "protocol": "tcp"}
            for cp, hp in ports.items()
        ]

    if iso.read_only_root:
        spec["read_only_filesystem"] = True
        # Podman's automatic tmpfs mounts have no size; our /tmp is bounded by policy.
        spec["read_write_tmpfs"] = False
        spec["mounts"] = [
            {"destination": path, "type": "tmpfs", "source": "tmpfs",
             "options": ["rw", "nosuid", "nodev", f"size={size}"]}
            for path, size in tmpfs_sizes(policy, writable_paths).items()
            if path not in {m.target for m in mounts or []}
        ]
    if mounts:
        # A bind at a tmpfs path (a writable /tmp from the host) takes its place.
        spec["mounts"] = spec.get("mounts", []) + bind_entries(mounts)
    if internal_mounts:
        spec.setdefault("mounts", []).extend(internal_mounts)
    # Process isolation: a private PID namespace (the sandbox sees only its own
    # processes) and a private IPC namespace, both stated rather than left to
    # containers.conf. Off (refused at High and above) shares the host's PID namespace.
    # IPC stays private even then: Podman's host IPC mode needs the host's /dev/mqueue,
    # which rootless hosts often lack, and no test needs the host's System V IPC.
    spec["pidns"] = {"nsmode": "private" if policy.security_policy.enable_process_isolation else "host"}
    spec["ipcns"] = {"nsmode": "private"}
    if iso.drop_all_capabilities:
        spec["cap_drop"] = ["ALL"]
        caps = [c.upper().removeprefix("CAP_") for c in [*(iso.allowed_capabilities or []), *(extra_caps or [])]]
        if caps:
            spec["cap_add"] = sorted(set(caps))
    if iso.no_new_privileges:
        spec["no_new_privileges"] = True
    # Always a file of ours (the level's) or the policy's own: never whatever the host's
    # engine default happens to be.
    spec["seccomp_profile_path"] = str(profile_for(policy.security_policy))
    if limits.pids_limit:
        # Ignored by rootless Podman on cgroup v1 (cleanroom enforces it itself there);
        # honoured natively on cgroup v2.
        spec.setdefault("resource_limits", {})["pids"] = {"limit": int(limits.pids_limit)}
    return spec
