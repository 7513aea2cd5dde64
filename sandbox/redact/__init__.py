"""Redaction: nothing cleanroom shows or stores passes unmasked."""

from sandbox.redact.dialect import PatternError, compile_pattern
from sandbox.redact.logging import install_log_redaction
from sandbox.redact.pack import BUILTIN_IDS, BUILTIN_RULES, PACK_SAMPLES
from sandbox.redact.redactor import MIN_SECRET_LENGTH, Redactor, live_redactors
from sandbox.redact.rules import Rule
from sandbox.redact.stream import RedactingStream

__all__ = ["Redactor", "RedactingStream", "BUILTIN_RULES", "BUILTIN_IDS", "PACK_SAMPLES", "Rule",
           "install_log_redaction", "live_redactors", "compile_pattern", "PatternError", "MIN_SECRET_LENGTH"]
