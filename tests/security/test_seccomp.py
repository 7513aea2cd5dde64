"""Each syscall the hardened profile denies fails inside a real Maximum sandbox, and the
failure is ours: the same call under Low (baseline profile) and under the same Maximum
policy with an allow-all profile shows what the kernel itself answers.

The probe (seccomp_probe.c, built static here) reports two things per call:
- attempt: what a workload gets when it makes the call;
- verdict: what the sandbox's seccomp profile decided, isolated from the kernel's own
  checks (the probe stacks a filter answering TRACE for that one call, so an allowing
  profile yields ENOSYS and a denying one its own errno; see the C file's comment).
So "EPERM from a missing capability" (attempt EPERM, verdict ENOSYS) and "EPERM from our
profile" (verdict EPERM) are told apart explicitly.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import msgspec
import pytest

from sandbox import CleanroomConfig, CleanroomEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, REPO  # noqa: E402

STRICT = REPO / "policies" / "strict.toml"
PROBE_SRC = Path(__file__).with_name("seccomp_probe.c")
PROBE_IMAGE = "localhost/cleanroom/seccomp-probe:test"
ALLOWED = "ENOSYS"  # the verdict when the profile let the call through (see the module docstring)

# probe -> what the kernel answers when seccomp lets the call through, under Maximum's
# capabilities (none) — the allow-all control. The arguments are chosen so that, where the
# kernel gets the call, it fails harmlessly or touches only the probe's own process.
KERNEL = {
    "unshare_newuser": "OK", "clone_newuser": "OK", "keyctl": "EOPNOTSUPP",
    "add_key": "OK", "request_key": "ENOKEY", "ptrace": "ESRCH", "process_vm_readv": "OK",
    "process_vm_writev": "OK", "bpf": "EFAULT", "perf_event_open": "EFAULT", "userfaultfd": "OK",
    "io_uring_setup": "EFAULT", "io_uring_enter": "EBADF", "io_uring_register": "EINVAL", "mount": "EFAULT",
    "umount2": "EINVAL", "fsconfig": "EINVAL", "open_tree": "OK", "open_by_handle_at": "EFAULT",
    # The kernel's own capability checks come first for these: CAP_SYS_ADMIN over the mount
    # namespace, CAP_SYS_BOOT / CAP_SYS_MODULE in the initial namespace (never held rootless).
    "pivot_root": "EPERM", "move_mount": "EPERM", "fsopen": "EPERM", "fsmount": "EPERM",
    # A kernel built without kexec or module support (a microVM's, say) answers ENOSYS instead.
    "kexec_load": ("EPERM", "ENOSYS"), "kexec_file_load": ("EPERM", "ENOSYS"), "init_module": ("EPERM", "ENOSYS"),
    "finit_module": ("EPERM", "ENOSYS"),
}
DENIED = list(KERNEL)

# probe -> (attempt, verdict, why) under Low, whose baseline profile is the engine default's surface.
LOW = {
    "unshare_newuser": ("OK", ALLOWED, "allowed"), "clone_newuser": ("OK", ALLOWED, "allowed"),
    "keyctl": ("EOPNOTSUPP", ALLOWED, "allowed; unknown op"),
    "ptrace": ("ESRCH", ALLOWED, "allowed; the parent is not our tracee"),
    "process_vm_readv": ("OK", ALLOWED, "allowed"), "process_vm_writev": ("OK", ALLOWED, "allowed"),
    "mount": ("EFAULT", ALLOWED, "allowed; bad fs type pointer"), "umount2": ("EINVAL", ALLOWED, "allowed; bad flag"),
    "fsconfig": ("EINVAL", ALLOWED, "allowed; bad fd"), "open_tree": ("OK", ALLOWED, "allowed"),
    "pivot_root": ("EPERM", ALLOWED, "allowed by seccomp; the kernel wants CAP_SYS_ADMIN"),
    "move_mount": ("EPERM", ALLOWED, "allowed by seccomp; the kernel wants CAP_SYS_ADMIN"),
    "fsopen": ("EPERM", ALLOWED, "allowed by seccomp; the kernel wants CAP_SYS_ADMIN"),
    "fsmount": ("EPERM", ALLOWED, "allowed by seccomp; the kernel wants CAP_SYS_ADMIN"),
    # The engine default already refuses these without a capability Low does not grant...
    "bpf": ("EPERM", "EPERM", "baseline: only with CAP_SYS_ADMIN"),
    "perf_event_open": ("EPERM", "EPERM", "baseline: only with CAP_SYS_ADMIN"),
    "init_module": ("EPERM", "EPERM", "baseline: only with CAP_SYS_MODULE"),
    "finit_module": ("EPERM", "EPERM", "baseline: only with CAP_SYS_MODULE"),
    "open_by_handle_at": ("EPERM", "EPERM", "baseline: only with CAP_DAC_READ_SEARCH"),
    # ...or outright,...
    "userfaultfd": ("EPERM", "EPERM", "baseline: denied"), "kexec_load": ("EPERM", "EPERM", "baseline: denied"),
    "kexec_file_load": ("EPERM", "EPERM", "baseline: denied"),
    # ...or does not list them at all (its default answer, ENOSYS).
    "add_key": ("ENOSYS", "ENOSYS", "baseline: not listed"), "request_key": ("ENOSYS", "ENOSYS", "baseline: not listed"),
    "io_uring_setup": ("ENOSYS", "ENOSYS", "baseline: not listed"),
    "io_uring_enter": ("ENOSYS", "ENOSYS", "baseline: not listed"),
    "io_uring_register": ("ENOSYS", "ENOSYS", "baseline: not listed"),
}


def _build_probe_image(work: Path) -> None:
    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the seccomp probe: apt-get install gcc libc6-dev (setup-host.sh does)"
    binary = work / "seccomp_probe"
    subprocess.run([gcc, "-static", "-O2", "-o", str(binary), str(PROBE_SRC), "-lpthread"], check=True,
                   capture_output=True, text=True)
    with tarfile.open(work / "probe.tar", "w") as tar:
        tar.add(binary, arcname="seccomp_probe")
    subprocess.run(["podman", "import", "-q", "--change", 'CMD ["/seccomp_probe"]', str(work / "probe.tar"),
                    PROBE_IMAGE], check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def probe_image(tmp_path_factory) -> str:
    _build_probe_image(tmp_path_factory.mktemp("probe"))
    return PROBE_IMAGE


def _config(level: str | None = None, profile: Path | None = None) -> CleanroomConfig:
    config = CleanroomConfig.from_file(STRICT)
    sp = config.security_policy
    if level:
        sp = msgspec.structs.replace(sp, security_level=level)
    if profile:
        sp = msgspec.structs.replace(sp, seccomp_profile=str(profile))
    return config.with_changes(security_policy=sp)


def _probe(config: CleanroomConfig, image: str, tmp_path: Path, podman_url: str) -> dict[str, tuple[str, str]]:
    with CleanroomEnvironment(config, url=podman_url, audit_dir=tmp_path / "audit") as env:
        r = env.run(image, ["/seccomp_probe"], timeout=60)
    assert r.exit_code == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        name, attempt, verdict = line.split()
        out[name] = (attempt.removeprefix("attempt="), verdict.removeprefix("verdict="))
    return out


@pytest.fixture(scope="module")
def results(probe_image, tmp_path_factory, podman_url) -> dict[str, dict[str, tuple[str, str]]]:
    """One sandbox per column: strict (Maximum, hardened), Low (baseline), and the control:
    strict with an allow-all profile of the user's (same capabilities, no syscall filter)."""
    tmp = tmp_path_factory.mktemp("seccomp")
    allow_all = tmp / "allow-all.json"
    allow_all.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    return {
        "maximum": _probe(_config(), probe_image, tmp / "max", podman_url),
        "low": _probe(_config("Low"), probe_image, tmp / "low", podman_url),
        "control": _probe(_config(profile=allow_all), probe_image, tmp / "control", podman_url),
    }


def test_the_strict_policy_is_maximum():
    assert CleanroomConfig.from_file(STRICT).security_policy.security_level == "Maximum"


@pytest.mark.parametrize("probe", DENIED)
def test_denied_with_eperm_by_our_profile_under_maximum(results, probe):
    assert results["maximum"][probe] == ("EPERM", "EPERM")


@pytest.mark.parametrize("probe", DENIED)
def test_without_our_profile_the_same_sandbox_gets_the_kernels_answer(results, probe):
    # Same policy, same capabilities, an allow-all profile: the call reaches the kernel,
    # so the probe's verdict mechanism and arguments are sound, and any EPERM left is the kernel's.
    attempt, verdict = results["control"][probe]
    expected = KERNEL[probe] if isinstance(KERNEL[probe], tuple) else (KERNEL[probe],)
    assert verdict == ALLOWED and attempt in expected


@pytest.mark.parametrize("probe", DENIED)
def test_positive_control_under_low(results, probe):
    attempt, verdict, why = LOW[probe]
    assert results["low"][probe] == (attempt, verdict), why


def test_clone3_answers_enosys_and_threads_still_work_under_maximum(results):
    # clone3's flags are out of a filter's reach: ENOSYS, whatever the flags, so glibc falls back to
    # clone, whose flags the profile checks. Threads and plain forks keep working.
    assert results["maximum"]["clone3_plain"][0] == "ENOSYS"
    assert results["maximum"]["clone3_newuser"][0] == "ENOSYS"
    assert results["maximum"]["pthread_create"][0] == "OK"
    assert results["maximum"]["clone_plain"] == ("OK", ALLOWED)
    assert results["low"]["clone3_plain"] == results["low"]["clone3_newuser"] == ("OK", ALLOWED)
    assert results["control"]["clone3_newuser"] == ("OK", ALLOWED)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the probe's 32-bit ABI calls are x86_64 code")
def test_the_32bit_abi_is_refused_under_maximum(results):
    # Only the native architecture is in the hardened profile; a call through another ABI hits
    # runc's bad-architecture action: the process is killed with SIGSYS (31), the call never runs.
    assert results["maximum"]["i386_abi"] == ("SIG31", "SIG31")
    assert results["maximum"]["x32_abi"] == ("SIG31", "SIG31")
    # Under Low the baseline keeps the i386 ABI (32-bit binaries run); x32 is up to the kernel.
    assert results["low"]["i386_abi"] == ("OK", ALLOWED)
    assert results["low"]["x32_abi"][0] in ("OK", "ENOSYS")


def test_busybox_unshare_u_fails_under_strict_and_works_under_low(tmp_path, podman_url):
    cmd = ["/bin/unshare", "-U", "/bin/id", "-u"]
    with CleanroomEnvironment(_config(), url=podman_url, audit_dir=tmp_path / "a") as env:
        strict = env.run(BUSYBOX, cmd)
    with CleanroomEnvironment(_config("Low"), url=podman_url, audit_dir=tmp_path / "b") as env:
        low = env.run(BUSYBOX, cmd)
    assert strict.exit_code != 0 and "Operation not permitted" in strict.stderr, strict
    assert low.exit_code == 0 and low.stdout.strip() == "65534", low  # unmapped in the new namespace: nobody
