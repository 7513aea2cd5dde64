#!/usr/bin/env python3
"""Write cleanroom's shipped seccomp profiles (sandbox/confine/seccomp/*.json).

Run by a maintainer when the baseline should follow a newer engine default, never at
build or run time: the written files are committed and shipped, so a sandbox's syscall
surface does not depend on what the host's containers-common happens to carry.

    python3 scripts/gen-seccomp.py [/usr/share/containers/seccomp.json]

Input: Podman's default profile (containers-common), read only for the list of
syscalls an ordinary container needs. Output, per machine (x86_64, aarch64):
- ``baseline-<machine>.json`` (Minimal, Low, Medium): that surface for one machine,
  the arch-specific rules resolved, capability-conditional rules kept as they are.
- ``hardened-<machine>.json`` (High, Maximum): the baseline minus the kernel surface
  behind most container escapes, each denied with EPERM; new user namespaces denied by
  clone/unshare flag; clone3 answers ENOSYS (its flags sit in memory a filter cannot
  read, so libc must fall back to clone, whose flags it can); only the native syscall
  ABI is listed, so 32-bit (and x32) entry points are refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sandbox" / "confine" / "seccomp"
EPERM, ENOSYS = 1, 38
CLONE_NEWUSER = 0x10000000

# machine -> (native libseccomp arch, the 32-bit/compat ABIs the baseline keeps, Go arch names
# that the engine default uses in includes.arches for this machine)
MACHINES = {
    "x86_64": ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], {"amd64", "x32", "x86"}),
    "aarch64": ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"], {"arm64", "arm"}),
}

# What High and Maximum refuse with EPERM, grouped by why.
HARDENED_DENY: dict[str, list[str]] = {
    "kernel keyrings (shared across containers, not namespaced)": ["keyctl", "add_key", "request_key"],
    "reading or writing another process's memory": ["ptrace", "process_vm_readv", "process_vm_writev"],
    "eBPF and perf: large kernel attack surface": ["bpf", "perf_event_open"],
    "userfaultfd: stalls kernel memory accesses, a race-exploit helper": ["userfaultfd"],
    "io_uring: bypasses syscall filtering for the I/O it performs": ["io_uring_setup", "io_uring_enter",
                                                                    "io_uring_register"],
    "mounts: the sandbox's filesystem view is fixed at create": [
        "mount", "umount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
        "open_tree", "mount_setattr"],
    "loading a new kernel or kernel modules": ["kexec_load", "kexec_file_load", "init_module", "finit_module",
                                               "delete_module"],
    "opening files by handle: escapes a bind mount's subtree": ["open_by_handle_at"],
}
# Guarded by flag instead: allowed without CLONE_NEWUSER, EPERM with it.
FLAG_GUARDED = ["clone", "unshare"]


def _arch_ok(rule: dict, go_arches: set[str]) -> bool:
    arches = (rule.get("includes") or {}).get("arches")
    excluded = (rule.get("excludes") or {}).get("arches")
    if arches and not set(arches) & go_arches:
        return False
    return not (excluded and set(excluded) & go_arches)


def _clean(rule: dict, drop: set[str]) -> dict | None:
    """A rule of the engine default in our layout, with ``drop`` names removed and arches resolved."""
    names = [n for n in rule["names"] if n not in drop]
    if not names:
        return None
    out: dict = {"names": sorted(names), "action": rule["action"]}
    if rule["action"] == "SCMP_ACT_ERRNO":
        out["errnoRet"] = rule.get("errnoRet", EPERM)
    if rule.get("args"):
        out["args"] = rule["args"]
    caps = {k: v.get("caps") for k, v in (("includes", rule.get("includes") or {}),
                                          ("excludes", rule.get("excludes") or {})) if v.get("caps")}
    for key, value in caps.items():
        out[key] = {"caps": value}
    return out


def _flag_rules(name: str) -> list[dict]:
    mask = {"index": 0, "value": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}
    return [
        {"names": [name], "action": "SCMP_ACT_ALLOW", "args": [dict(mask, valueTwo=0)],
         "comment": "allowed without CLONE_NEWUSER"},
        {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "args": [dict(mask, valueTwo=CLONE_NEWUSER)],
         "comment": "no new user namespace"},
    ]


def build(default: dict, machine: str, hardened: bool) -> dict:
    native, compat, go_arches = MACHINES[machine]
    deny = {n for names in HARDENED_DENY.values() for n in names}
    drop = deny | set(FLAG_GUARDED) | {"clone3"} if hardened else set()
    rules = []
    if hardened:
        rules += [{"names": sorted(names), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM, "comment": why}
                  for why, names in HARDENED_DENY.items()]
        for name in FLAG_GUARDED:
            rules += _flag_rules(name)
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                      "comment": "flags unreadable by a filter: ENOSYS makes libc fall back to clone"})
    for rule in default["syscalls"]:
        if _arch_ok(rule, go_arches) and (cleaned := _clean(rule, drop)):
            rules.append(cleaned)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": ENOSYS,  # unknown (newer) syscalls: ENOSYS, so callers fall back
        "architectures": [native] if hardened else [native, *compat],
        "syscalls": rules,
    }


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "/usr/share/containers/seccomp.json")
    default = json.loads(src.read_text())
    OUT.mkdir(parents=True, exist_ok=True)
    for machine in MACHINES:
        for flavour in ("baseline", "hardened"):
            path = OUT / f"{flavour}-{machine}.json"
            path.write_text(json.dumps(build(default, machine, flavour == "hardened"), indent=1) + "\n")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
