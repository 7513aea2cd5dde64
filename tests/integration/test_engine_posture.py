"""The posture check on real Podman: at every security level, what the kernel enforces
on the container's first process (read before its command runs) is what was asked."""

from __future__ import annotations

import json

import pytest
from podman_helpers import BUSYBOX

from sandbox import CleanroomConfig, CleanroomEnvironment

LEVELS = ("Minimal", "Low", "Medium", "High", "Maximum")


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_passes_its_own_posture_check_and_gets_what_it_asked(tmp_path, podman_url, level):
    cfg = CleanroomConfig.from_toml(f'[cleanroom.security_policy]\nsecurity_level = "{level}"\n'
                                    'audit_level = "Maximum"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"])
        records = [json.loads(line) for line in env.audit_path.read_text().splitlines()]
    assert r.exit_code == 0, r.stderr
    assert not [x for x in records if x["event"] == "posture.mismatch"]
    status = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert status["Seccomp"] == "2"  # a seccomp filter at every level
    iso_nnp = level != "Minimal"
    assert status["NoNewPrivs"] == ("1" if iso_nnp else "0")
    if level == "Maximum":
        assert int(status["CapBnd"], 16) == 0  # nothing left to escalate with
