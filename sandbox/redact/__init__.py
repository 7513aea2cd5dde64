"""Redaction: nothing cleanroom shows or stores passes unmasked."""

from sandbox.redact.logging import install_log_redaction
from sandbox.redact.redactor import RedactingStream, Redactor, live_redactors
from sandbox.redact.rules import BUILTIN_RULES, Rule

__all__ = ["Redactor", "RedactingStream", "BUILTIN_RULES", "Rule", "install_log_redaction", "live_redactors"]
