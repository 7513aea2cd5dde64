"""`cleanroom doctor`: each thing cleanroom needs, whether this host has it, and the fix."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click
import msgspec

from sandbox.confine import cgroup_driver_name
from sandbox.confine.cgroups import make_driver
from sandbox.confine.seccomp import FLAVOUR, shipped_profile
from sandbox.engine.podman.libpod import LibpodAPI
from sandbox.errors import EngineUnavailable, PolicyError
from sandbox.policy.seccomp_file import profile_problem

IMAGES = ("localhost/cleanroom/busybox:latest", "localhost/cleanroom/services:bookworm")


class Check(msgspec.Struct):
    name: str
    ok: bool
    detail: str
    fix: str = ""


RCU_EXPEDITED = Path("/sys/kernel/rcu_expedited")


def rcu_hint(version: str, knob: Path = RCU_EXPEDITED) -> Check | None:
    """On cgroup v1 moving a process between cgroups waits for an RCU grace period (the
    kernel's threadgroup lock), ~10 ms per sandbox on this project's machine; expedited
    grace periods cut that to ~0.1 ms. A speed hint, never a failure: the host's choice."""
    if version != "v1":
        return None
    try:
        on = knob.read_text().strip() == "1"
    except OSError:
        return None
    if on:
        return Check("cgroup v1 placement", True, "rcu_expedited=1: a sandbox is placed in ~0.1 ms")
    return Check("cgroup v1 placement", True, "each sandbox's placement waits for an RCU grace period (~10 ms)",
                 f"optional, as root: echo 1 > {knob} (expedited grace periods, a little more CPU for RCU "
                 "host-wide); cold sandboxes start ~10 ms sooner")


def _cgroup_checks() -> list[Check]:
    driver = make_driver()
    if driver is None:
        return [Check("cgroups", False, "no cgroup filesystem found", "mount cgroupfs")]
    delegated = driver.available()
    hint = rcu_hint(driver.version)
    return [
        Check("cgroup version", True, driver.version),
        Check("cgroup delegation", delegated,
              f"{'writable' if delegated else 'missing or not writable'}: {driver.location()}; "
              f"driver: {cgroup_driver_name()}",
              "" if delegated else "run scripts/setup-host.sh as root (it delegates cleanroom.<user>)"),
        *([hint] if hint else []),
    ]


_FLAVOUR_SUMMARY = {
    "baseline": "the engine default's syscall surface, pinned",
    "hardened": "EPERM for new user namespaces, keyrings, ptrace, process_vm_*, bpf, perf, userfaultfd, io_uring, "
                "mounts, kexec/modules, open_by_handle_at; clone3 ENOSYS; native ABI only",
}


def _seccomp_checks() -> list[Check]:
    """The profile each security level runs under, and whether the kernel can apply one."""
    avail = _lines("/proc/sys/kernel/seccomp/actions_avail")
    kernel_ok = bool(avail) and "errno" in avail[0].split()
    checks = [Check("seccomp (kernel)", kernel_ok, avail[0] if avail else "no seccomp filter support",
                    "" if kernel_ok else "a kernel built with CONFIG_SECCOMP_FILTER")]
    for level, flavour in FLAVOUR.items():
        try:
            path = shipped_profile(level)
        except PolicyError as exc:
            checks.append(Check(f"seccomp {level}", False, exc.reason, exc.allowed or ""))
            continue
        problem = profile_problem(path)
        checks.append(Check(f"seccomp {level}", problem is None,
                            problem or f"cleanroom {flavour} ({path}): {_FLAVOUR_SUMMARY[flavour]}",
                            "reinstall cleanroom (the shipped profile is missing or damaged)" if problem else ""))
    return checks


def collect(url: str | None) -> list[Check]:
    user = getpass.getuser()
    checks: list[Check] = []
    try:
        api = LibpodAPI(url)
    except EngineUnavailable as exc:
        checks.append(Check("podman service", False, str(exc).splitlines()[0] + " " +
                            "; ".join(t for t, _ in exc.tried), exc.fix))
        api = None
    if api is not None:
        try:
            info = api.info()
            version = (info.get("version") or {}).get("Version", "?")
            host = info.get("host") or {}
            sec = host.get("security") or {}
            runtime = (host.get("ociRuntime") or {}).get("name", "?")
            checks.append(Check("podman service", True, f"{api.url} (Podman {version})"))
            rootless = bool(sec.get("rootless"))
            checks.append(Check("rootless", rootless, "yes" if rootless else "no: the service runs as root",
                                "" if rootless else "run the API service as an unprivileged user"))
            crun_bad = runtime == "crun" and host.get("cgroupVersion") == "v1"
            checks.append(Check("oci runtime", not crun_bad, runtime,
                                "set [engine] runtime = \"runc\" in ~/.config/containers/containers.conf"
                                if crun_bad else ""))
            for image in IMAGES:
                present = api.image_exists(image)
                checks.append(Check(f"image {image}", present, "present" if present else "missing",
                                    "" if present else "cleanroom images build (or make images)"))
        except Exception as exc:  # doctor must report, not crash
            checks.append(Check("podman info", False, f"{type(exc).__name__}: {exc}", "check the service log"))
        finally:
            api.close()
    checks.extend(_cgroup_checks())
    checks.extend(_seccomp_checks())
    tun = Path("/dev/net/tun")
    tun_ok = tun.exists() and os.access(tun, os.R_OK | os.W_OK)
    checks.append(Check("/dev/net/tun", tun_ok, "usable" if tun_ok else "not usable by this user",
                        "" if tun_ok else "chmod 0666 /dev/net/tun (as root); only --network none works without it"))
    subuid = any(line.split(":")[0] == user for line in _lines("/etc/subuid"))
    checks.append(Check("subuid/subgid", subuid, "ranges present" if subuid else f"no range for {user}",
                        "" if subuid else f"usermod --add-subuids 200000-265535 --add-subgids 200000-265535 {user}"))
    return checks


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def doctor_main(as_json: bool, url: str | None) -> int:
    checks = collect(url)
    if as_json:
        click.echo(msgspec.json.encode(checks).decode())
    else:
        for c in checks:
            mark = "ok " if c.ok else "FAIL"
            click.echo(f"[{mark}] {c.name}: {c.detail}")
            if c.fix:
                click.echo(f"       fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1
