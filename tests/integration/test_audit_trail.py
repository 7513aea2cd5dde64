"""The audit trail of a real run: sealed on close, its head printed for anchoring, and no sandbox
at all when the audit sink cannot be written."""

from __future__ import annotations

import json
import os
import re

import pytest
from podman_helpers import BUSYBOX, REPO, cleanroom_cli, containers_with_label

from sandbox import AuditError, CleanroomConfig, CleanroomEnvironment, CleanroomError
from sandbox.audit import verify_audit_log
from sandbox.engine.teardown.ownership import LABEL_ENV

STRICT = REPO / "policies" / "strict.toml"


def test_cli_run_prints_the_head_that_anchors_the_sealed_log(tmp_path):
    env = dict(os.environ, CLEANROOM_AUDIT_DIR=str(tmp_path))
    proc = cleanroom_cli("run", "--policy", str(STRICT), BUSYBOX, "--", "/bin/true", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = proc.stderr.strip().splitlines()[-1]
    m = re.search(r"audit (\S+\.jsonl) head ([0-9a-f]{64})$", summary)
    assert m, summary
    path, head = m.groups()
    last = json.loads(open(path).read().splitlines()[-1])
    assert last["event"] == "audit.sealed" and last["hash"] == head
    verified = cleanroom_cli("audit", "verify", path, "--head", head)
    assert verified.returncode == 0 and "sealed" in verified.stdout, verified.stderr


def test_cli_run_json_carries_the_head(tmp_path):
    env = dict(os.environ, CLEANROOM_AUDIT_DIR=str(tmp_path))
    proc = cleanroom_cli("run", "--json", "--policy", str(STRICT), BUSYBOX, "--", "/bin/true", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    r = verify_audit_log(data["audit_path"], head=data["audit_head"])
    assert r.ok and r.sealed and r.head == data["audit_head"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode; the suite runs as a user")
def test_an_unwritable_audit_dir_stops_the_environment_before_any_sandbox(tmp_path, podman_url, podman_api):
    ro = tmp_path / "audit"
    ro.mkdir()
    ro.chmod(0o500)
    env = CleanroomEnvironment(CleanroomConfig.from_file(STRICT), url=podman_url, audit_dir=ro)
    try:
        with pytest.raises(AuditError) as info:
            with env:
                env.run(BUSYBOX, ["/bin/true"])
        assert str(ro) in str(info.value) and "Permission denied" in str(info.value)
        # Opening failed, so the environment cannot create a sandbox ...
        with pytest.raises(CleanroomError, match="not open"):
            env.run(BUSYBOX, ["/bin/true"])
        # ...and none was: no container carries this environment's label.
        assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode; the suite runs as a user")
def test_cli_run_refuses_with_an_unwritable_audit_dir(tmp_path):
    ro = tmp_path / "audit"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        env = dict(os.environ, CLEANROOM_AUDIT_DIR=str(ro))
        proc = cleanroom_cli("run", "--policy", str(STRICT), BUSYBOX, "--", "/bin/echo", "ran", env=env)
        assert proc.returncode == 125 and "ran" not in proc.stdout
        assert "nothing runs unaudited" in proc.stderr and "audit_log_dir" in proc.stderr
    finally:
        ro.chmod(0o700)
