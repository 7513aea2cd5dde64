"""`cleanroom audit report` on the log of a real environment run under the shipped
compliance policy: a redaction and a timeout breach are counted, the keyed chain
verifies, the controls come from the controls snapshot the log's policy.applied record carries."""

from __future__ import annotations

import json
import os

import pytest
from podman_helpers import BUSYBOX, REPO, cleanroom_cli

from sandbox import CleanroomConfig, CleanroomEnvironment, TimeoutExceeded

KEY = "integration-audit-key-0123456789abcdef"


def test_report_of_a_real_run_under_the_compliance_policy(tmp_path, podman_url, monkeypatch):
    monkeypatch.setenv("CLEANROOM_AUDIT_KEY", KEY)
    cfg = CleanroomConfig.from_file(REPO / "policies" / "compliance.toml")
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        r = env.run(BUSYBOX, ["/bin/sh", "-c", "echo password=hunter2-value"])
        assert "hunter2-value" not in r.stdout
        with pytest.raises(TimeoutExceeded):
            env.run(BUSYBOX, ["/bin/sleep", "30"], timeout=1)
        log = env.audit_path
    proc = cleanroom_cli("audit", "report", str(log), "--standard", "SOC2", "--standard", "PCI-DSS",
                         "--key-env", "CLEANROOM_AUDIT_KEY", "--json", env=dict(os.environ, CLEANROOM_AUDIT_KEY=KEY))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ev = json.loads(proc.stdout)
    assert ev["complete"] and ev["chain_verified"] and ev["keyed"] is True
    assert ev["environments"] == [env.id] and ev["sandboxes"] == 2
    assert ev["breaches"] == {"timeout": 1} and ev["redactions"].get("assignment", 0) >= 1
    assert ev["controls_source"] == "the audit log's policy.applied record"
    assert all(c["met"] for cs in ev["controls"].values() for c in cs)
    assert KEY not in proc.stdout and "hunter2-value" not in proc.stdout
    # Without the key the same log is not evidence of a keyed trail.
    text = cleanroom_cli("audit", "report", str(log), "--standard", "SOC2")
    assert text.returncode == 1 and "evidence: INCOMPLETE" in text.stdout and "keying unknown" in text.stdout
