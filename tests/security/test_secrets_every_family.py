"""A real sandbox prints a secret of every built-in rule (every family), each written in
two pieces cut inside the secret, one per family with a pause between the pieces, on
stdout and stderr in turn. None may reach the result, the audit file, or the output of
`python -m sandbox.cli run`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sandbox import CleanroomConfig, CleanroomEnvironment
from sandbox.audit import verify_audit_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, cleanroom_cli  # noqa: E402
from secret_samples import FAMILY, ONE_PER_RULE  # noqa: E402

FAMILIES = sorted(set(FAMILY.values()))


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def leaky_script() -> str:
    parts, paused = [], set()
    for i, (rule, line, secret) in enumerate(ONE_PER_RULE):
        cut = line.index(secret) + len(secret) // 2
        redirect = " >&2" if i % 2 else ""
        family = FAMILY[rule]
        pause = "sleep 0.05; " if family not in paused else ""
        paused.add(family)
        parts.append(f"printf '%s' {_q(line[:cut])}{redirect}; {pause}printf '%s\\n' {_q(line[cut:])}{redirect}")
    return "\n".join(parts)


def assert_clean(text: str, where: str) -> None:
    for rule, _, secret in ONE_PER_RULE:
        assert secret not in text, f"{rule}: secret leaked into {where}"


def test_every_family_printed_in_pieces_never_leaks(tmp_path, podman_url):
    assert len(FAMILIES) >= 14 and len(ONE_PER_RULE) >= 150
    cfg = CleanroomConfig.from_toml('[cleanroom.security_policy]\naudit_level = "Maximum"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        result = env.run(BUSYBOX, ["/bin/sh", "-c", leaky_script()], timeout=120)
        audit_path = env.audit_path
    assert result.exit_code == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert_clean(output, "the result")
    assert_clean(" ".join(result.command), "the result's command")
    assert output.count("[REDACTED:") >= len(ONE_PER_RULE)
    audit = Path(audit_path).read_text()
    assert_clean(audit, "the audit file")
    assert "redaction.counts" in audit and verify_audit_log(audit_path).ok


def test_cli_run_output_never_leaks(tmp_path):
    env = dict(os.environ, CLEANROOM_AUDIT_DIR=str(tmp_path))
    proc = cleanroom_cli("run", BUSYBOX, "--", "/bin/sh", "-c", leaky_script(), env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_clean(proc.stdout + proc.stderr, "the CLI output")
    assert (proc.stdout + proc.stderr).count("[REDACTED:") >= len(ONE_PER_RULE)
    audits = list(tmp_path.glob("*.jsonl"))
    assert len(audits) == 1
    assert_clean(audits[0].read_text(), "the CLI's audit file")
