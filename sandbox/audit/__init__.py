"""Hash-chained audit trail and its verifier."""

from sandbox.audit.events import SecurityEvent, security_events
from sandbox.audit.log import LEVELS, AuditLog, level_at_least
from sandbox.audit.verify import VerifyResult, verify_audit_log

__all__ = ["AuditLog", "LEVELS", "level_at_least", "verify_audit_log", "VerifyResult", "SecurityEvent",
           "security_events"]
