"""Log redaction wraps an application's own loguru patcher instead of replacing it."""

from loguru import logger

from sandbox.redact import Redactor, install_log_redaction
from sandbox.redact.samples import expand

TOKEN = expand("ghp_⟨a36⟩", "logging:gh").text


def test_application_patcher_still_runs_and_records_are_redacted():
    seen = []

    def app_patcher(record):
        record["extra"]["service"] = "billing"
        record["extra"]["leaked"] = f"token {TOKEN}"  # a patcher that adds a secret

    redactor = Redactor()  # a live redactor: log redaction applies every live one
    logger.configure(patcher=app_patcher)
    install_log_redaction()
    install_log_redaction()  # idempotent
    sink = logger.add(lambda m: seen.append(m.record), level="INFO", format="{message}")
    try:
        logger.info(f"pushing with {TOKEN}")
    finally:
        logger.remove(sink)
        logger.configure(patcher=None)
    record = seen[0]
    assert record["extra"]["service"] == "billing"  # the application's patcher ran
    assert TOKEN not in record["message"] and "[REDACTED:github_pat]" in record["message"]
    assert TOKEN not in record["extra"]["leaked"] and redactor.enabled


def test_a_patcher_set_after_installation_is_wrapped_on_the_next_install():
    seen = []
    install_log_redaction()
    logger.configure(patcher=lambda r: r["extra"].update(tag="late"))
    install_log_redaction()
    keep = Redactor()
    sink = logger.add(lambda m: seen.append(m.record), level="INFO", format="{message}")
    try:
        logger.info(f"x {TOKEN}")
    finally:
        logger.remove(sink)
        logger.configure(patcher=None)
    assert seen[0]["extra"]["tag"] == "late" and TOKEN not in seen[0]["message"]
    assert keep.enabled
