"""A real sandbox prints secrets of every built-in kind, split across writes with
pauses, on stdout and stderr, plus a registered secret in plain, base64 and
URL-encoded form. None may reach the result, the CLI, the log, the audit file or an
exception; the run's audit log must verify."""

from __future__ import annotations

import base64
import sys
import urllib.parse
from pathlib import Path

import pytest
from loguru import logger

from sandbox import CleanroomConfig, CleanroomEnvironment, TimeoutExceeded
from sandbox.audit import verify_audit_log

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from podman_helpers import BUSYBOX, cleanroom_cli  # noqa: E402
from secret_samples import FAMILY, ONE_PER_RULE  # noqa: E402

# One sample per family here (test_secrets_every_family.py prints one of every rule).
SAMPLES = list({FAMILY[rule]: (rule, line, secret) for rule, line, secret in reversed(ONE_PER_RULE)}.values())

REGISTERED = "reg1stered-S3cret/value+42"
REG_FORMS = [REGISTERED, base64.b64encode(REGISTERED.encode()).decode(), urllib.parse.quote(REGISTERED, safe="")]
ALL_SECRETS = [secret for _, _, secret in SAMPLES] + REG_FORMS


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def leaky_script() -> str:
    """Each secret written in two halves with a pause between; streams alternate."""
    parts = []
    for i, (_, line, secret) in enumerate(SAMPLES):
        cut = line.index(secret) + len(secret) // 2
        redirect = " >&2" if i % 2 else ""
        parts.append(f"printf '%s' {_q(line[:cut])}{redirect}; sleep 0.05; printf '%s\\n' {_q(line[cut:])}{redirect}")
    parts.append('printf "plain %s\\n" "$REG"')
    parts.append('printf "%s" "$REG" | base64 >&2')
    parts.append(f"printf 'urlenc %s\\n' {_q(urllib.parse.quote(REGISTERED, safe=''))}")
    return "; ".join(parts)


def assert_clean(text: str, where: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


@pytest.fixture
def log_lines():
    lines: list[str] = []
    logger.enable("sandbox")
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message} {extra}")
    yield lines
    logger.remove(sink)
    logger.disable("sandbox")


def test_library_run_masks_everything_and_the_audit_verifies(tmp_path, podman_url, log_lines):
    cfg = CleanroomConfig.from_toml('[cleanroom.security_policy]\naudit_level = "Maximum"\n')
    with CleanroomEnvironment(cfg, url=podman_url, audit_dir=tmp_path) as env:
        env.add_secret(REGISTERED, "REG")
        result = env.run(BUSYBOX, ["/bin/sh", "-c", leaky_script()], env={"REG": REGISTERED})
        # Something logged by application code through loguru is masked too.
        logger.bind(token=REGISTERED).warning(f"connecting with {SAMPLES[0][2]}")
        with pytest.raises(TimeoutExceeded) as info:
            env.run(BUSYBOX, ["/bin/sh", "-c", f'printf "%s\\n" "$REG" {_q(SAMPLES[0][1])}; sleep 30'],
                    env={"REG": REGISTERED}, timeout=1)
        audit_path = env.audit_path
    assert result.exit_code == 0
    assert_clean(result.stdout + result.stderr, "the result")
    assert_clean(" ".join(result.command), "the result's command")
    assert (result.stdout + result.stderr).count("[REDACTED:") >= len(SAMPLES)
    assert result.redactions.get("secret:REG", 0) >= 3
    assert_clean("\n".join(log_lines), "the log")
    assert any("[REDACTED:" in line for line in log_lines)
    assert_clean(str(info.value), "the timeout exception")
    assert "[REDACTED:secret:REG]" in str(info.value)
    audit = Path(audit_path).read_text()
    assert_clean(audit, "the audit file")
    assert "redaction.counts" in audit
    assert verify_audit_log(audit_path).ok
    # Maximum level: digests of the redacted output, never the output itself.
    import hashlib
    import json

    outputs = [json.loads(line)["data"] for line in audit.splitlines() if '"sandbox.output"' in line]
    assert outputs[0]["stdout_sha256"] == hashlib.sha256(result.stdout.encode()).hexdigest()


def test_cli_masks_a_secret_passed_with_secret(tmp_path):
    import os

    env = dict(os.environ, REG=REGISTERED, CLEANROOM_AUDIT_DIR=str(tmp_path))
    proc = cleanroom_cli("run", "--secret", "REG", BUSYBOX, "--", "/bin/sh", "-c", leaky_script(), env=env)
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc.stdout + proc.stderr, "the CLI output")
    assert "[REDACTED:secret:REG]" in proc.stdout
    audits = list(tmp_path.glob("*.jsonl"))
    assert len(audits) == 1
    assert_clean(audits[0].read_text(), "the CLI's audit file")
    assert verify_audit_log(audits[0]).ok
