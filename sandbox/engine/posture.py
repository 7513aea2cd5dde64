"""The posture check: after init, before anything runs, what Podman will actually run
must be what the policy asked for. Two sources, both read while the command still
waits: Podman's own record of the container (inspect) and the kernel's view of its
first process (/proc/PID/status), where capabilities, no-new-privileges and seccomp
are already in force. Any difference names itself and stops the sandbox."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import msgspec

# Linux capability numbers (include/uapi/linux/capability.h), for reading CapBnd.
_CAPS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
         "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
         "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
         "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
         "CHECKPOINT_RESTORE")


class Posture(msgspec.Struct, frozen=True, kw_only=True):
    """Isolation settings as Podman recorded them for one container."""

    read_only_root: bool = False
    no_new_privileges: bool = False
    privileged: bool = False
    network_mode: str = ""
    pid_mode: str = ""
    seccomp_default: str = ""  # the filter's default action in the runtime spec ("" when none)
    seccomp_denied: list[str] = msgspec.field(default_factory=list)  # syscalls denied whatever their arguments
    writable_mounts: list[str] = msgspec.field(default_factory=list)  # destinations


class KernelView(msgspec.Struct, frozen=True, kw_only=True):
    """/proc/PID/status of the container's first process, as the kernel enforces it,
    and its mount table (/proc/PID/mountinfo: mount point → per-mount options)."""

    bounding_caps: list[str]
    no_new_privs: bool
    seccomp_filtered: bool
    mounts: dict[str, list[str]] | None = None  # None: not read


def cap_name(cap: str) -> str:
    return cap.upper().removeprefix("CAP_")


def _writable(options: str | list[str] | None) -> bool:
    opts = options.split(",") if isinstance(options, str) else list(options or [])
    return "ro" not in opts


def seccomp_summary(profile: dict[str, Any] | None) -> tuple[str, list[str]]:
    """(default action, syscalls denied unconditionally) of a seccomp profile or of the
    runtime spec's linux.seccomp: what a sandbox cannot do whatever its arguments."""
    if not profile:
        return "", []
    denied = {name for rule in profile.get("syscalls") or []
              if str(rule.get("action", "")).startswith(("SCMP_ACT_ERRNO", "SCMP_ACT_KILL"))
              and not rule.get("args") and not rule.get("includes") and not rule.get("excludes")
              for name in rule.get("names") or []}
    return str(profile.get("defaultAction", "")), sorted(denied)


def posture_from_inspect(data: dict[str, Any], runtime_spec: dict[str, Any] | None) -> Posture:
    """From Podman's inspect record and the OCI runtime spec it wrote for the runtime."""
    hc = data.get("HostConfig") or {}
    sec = [str(o) for o in hc.get("SecurityOpt") or []]
    seccomp_default, seccomp_denied = seccomp_summary(((runtime_spec or {}).get("linux") or {}).get("seccomp"))
    mounts = [d for d, opts in (hc.get("Tmpfs") or {}).items() if _writable(opts)]
    mounts += [m.get("Destination", "") for m in data.get("Mounts") or [] if m.get("RW")]
    return Posture(read_only_root=bool(hc.get("ReadonlyRootfs")),
                   no_new_privileges="no-new-privileges" in sec or "no-new-privileges:true" in sec,
                   privileged=bool(hc.get("Privileged")), network_mode=str(hc.get("NetworkMode") or ""),
                   pid_mode=str(hc.get("PidMode") or ""), seccomp_default=seccomp_default,
                   seccomp_denied=seccomp_denied, writable_mounts=sorted(mounts))


def read_seccomp_profile(path: str | None) -> dict[str, Any] | None:
    """The profile a create body names (None when it names none). The policy loader
    already checked it; unreadable now means it changed under us, which must not pass."""
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        profile: dict[str, Any] = json.load(fh)
    return profile


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> dict[str, list[str]]:
    """Mount point → per-mount options; the last mount at a point is the one seen."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 5:
            out[_unescape(fields[4])] = fields[5].split(",")
    return out


def read_kernel_view(pid: int) -> KernelView:
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        mounts = parse_mountinfo(fh.read())  # paths as the container sees them: it has pivoted at init
    bits = int(fields.get("CapBnd", "0"), 16)
    caps = [name for i, name in enumerate(_CAPS) if bits >> i & 1]
    return KernelView(bounding_caps=caps, no_new_privs=fields.get("NoNewPrivs") == "1",
                      seccomp_filtered=fields.get("Seccomp") == "2", mounts=mounts)


def _expected_mode(nsmode: str) -> str:
    return {"none": "none", "slirp4netns": "slirp4netns", "bridge": "bridge"}.get(nsmode, nsmode)


def differences(spec: dict[str, Any], actual: Posture, kernel: KernelView | None,
                seccomp_profile: dict[str, Any] | None = None) -> list[str]:
    """What differs between the create body (derived from the policy, with the seccomp
    profile it names) and the container."""
    out: list[str] = []
    want_ro = bool(spec.get("read_only_filesystem"))
    if actual.read_only_root != want_ro:
        out.append(f"read-only root: policy {want_ro}, container {actual.read_only_root}")
    if actual.privileged:
        out.append("the container is privileged")
    want_nnp = bool(spec.get("no_new_privileges"))
    if want_nnp and not actual.no_new_privileges:
        out.append("no-new-privileges: asked for, not set")
    want_caps = sorted(cap_name(c) for c in spec.get("cap_add") or [])
    drop_all = "ALL" in [c.upper() for c in spec.get("cap_drop") or []]
    # Capabilities are compared in the kernel's bounding set below: Podman folds cap_add
    # into its final list and does not record it in inspect.
    want_net = _expected_mode((spec.get("netns") or {}).get("nsmode", ""))
    if want_net and not actual.network_mode.startswith(want_net):
        out.append(f"network mode: policy {want_net}, container {actual.network_mode or 'unknown'}")
    want_default, want_denied = seccomp_summary(seccomp_profile)
    if seccomp_profile is not None and actual.seccomp_default != want_default:
        out.append(f"seccomp default action: profile {want_default}, container {actual.seccomp_default or 'none'}")
    missing = sorted(set(want_denied) - set(actual.seccomp_denied))
    if missing:
        out.append(f"seccomp: the profile denies {missing}, the container's filter does not")
    allowed_rw = {m["destination"] for m in spec.get("mounts") or [] if _writable(m.get("options"))}
    extra = sorted(set(actual.writable_mounts) - allowed_rw)
    if want_ro and extra:
        out.append(f"writable mounts the policy did not ask for: {extra}")
    binds = [m for m in spec.get("mounts") or [] if m.get("type") == "bind"]
    leaked = sorted({m["destination"] for m in binds if not _writable(m.get("options"))} & set(actual.writable_mounts))
    if leaked:
        out.append(f"bind mounts asked read-only are writable in the container: {leaked}")
    if kernel is not None:
        out += _kernel_differences(want_nnp, drop_all, want_caps, seccomp_profile is not None, kernel)
        out += _kernel_bind_differences(binds, kernel.mounts)
    return out


def _kernel_bind_differences(binds: list[dict[str, Any]], mounts: dict[str, list[str]] | None) -> list[str]:
    """Each bind as the kernel has it: there, read-only when asked, nosuid and nodev."""
    if mounts is None:
        return []
    out = []
    for bind in binds:
        dest = bind["destination"]
        opts = mounts.get(dest)
        if opts is None:
            out.append(f"kernel: bind mount {dest} is not mounted")
            continue
        want_ro = not _writable(bind.get("options"))
        if want_ro != ("ro" in opts):
            out.append(f"kernel: bind mount {dest} is {'read-only' if 'ro' in opts else 'writable'}, "
                       f"policy asked {'read-only' if want_ro else 'writable'}")
        missing = [flag for flag in ("nosuid", "nodev") if flag not in opts]
        if missing:
            out.append(f"kernel: bind mount {dest} lacks {missing}")
    return out


def _kernel_differences(want_nnp: bool, drop_all: bool, want_caps: list[str], want_seccomp: bool,
                        kernel: KernelView) -> list[str]:
    out = []
    if want_nnp and not kernel.no_new_privs:
        out.append("kernel: NoNewPrivs is 0 for the container's process")
    if drop_all and sorted(kernel.bounding_caps) != want_caps:
        out.append(f"kernel: capability bounding set {sorted(kernel.bounding_caps)}, policy allows {want_caps}")
    if want_seccomp and not kernel.seccomp_filtered:
        out.append("kernel: no seccomp filter on the container's process")
    return out


KernelReader = Callable[[int], KernelView]
