"""Compliance standards as control profiles: naming a standard in
``compliance_standards`` is a promise held where the policy is enforced or reviewed.
Parsing checks the names only (so the reference guide's examples load as they are);
an environment refuses to open, and `cleanroom policy check` fails, while a named
standard's control is unmet (``require_controls``).

A control is one checkable property of the effective policy and the key that
satisfies it. Each standard lists the controls a reviewer of that standard asks a
test infrastructure for; the mapping is ours, written from what each standard is
about, not a certification:

- SOC2 (Trust Services Criteria: logical access, system monitoring): a complete,
  tamper-evident audit trail (High level, HMAC-keyed), redaction, no network
  egress, and the High isolation preset.
- ISO27001 (Annex A logging, data-leakage prevention, segregation): the SOC2 trail
  and redaction, no network egress, private process and filesystem views.
- GDPR (integrity and confidentiality, data protection by design): personal data
  is masked (redaction with the built-in rules), does not leave the sandbox
  (no egress), and what happened is recorded at High (accountability). No HMAC key
  required: the regulation asks for records, not for a forgery-proof chain.
- HIPAA (Security Rule: audit controls, integrity, transmission security): a keyed
  High-level trail, built-in redaction, no egress, the High isolation preset.
- PCI-DSS (protect stored account data, log and protect audit trails, network
  controls): everything above. Note the built-in rules mask credentials, not card
  numbers: add a ``redaction_patterns`` entry for PANs.

The checks read a *snapshot*: a small dict of the control-relevant settings. The
loader builds it from a policy; an audit log carries one in its ``policy.applied``
record, so ``cleanroom audit report`` evaluates the same controls from a log alone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import msgspec

from sandbox.errors import PolicyError
from sandbox.policy.isolation import effective_isolation
from sandbox.policy.model import LEVELS, PolicyConfig


class Control(msgspec.Struct, frozen=True):
    id: str
    description: str  # what holds when the control is met
    key: str  # the key (under cleanroom.) that satisfies it
    fix: str  # the setting to write
    met: Callable[[dict[str, Any]], bool]


def _at_least(level: str, minimum: str) -> bool:
    return level in LEVELS and LEVELS.index(level) >= LEVELS.index(minimum)


CONTROLS: dict[str, Control] = {c.id: c for c in (
    Control("audit.enabled", "an audit trail is written", "security_policy.enable_audit_logging",
            "enable_audit_logging = true", lambda s: bool(s["enable_audit_logging"])),
    # Breaches, redaction counts, commands and refused requests are recorded from High.
    Control("audit.level", "the audit trail records breaches, redactions and commands (level High or above)",
            "security_policy.audit_level", 'audit_level = "High"', lambda s: _at_least(s["audit_level"], "High")),
    Control("audit.keyed", "the audit chain is HMAC-keyed, so whoever can write the file cannot forge it",
            "security_policy.audit_hmac_key_env", 'audit_hmac_key_env = "CLEANROOM_AUDIT_KEY" (a variable set '
            "where environments open)", lambda s: bool(s["audit_hmac_key_env"])),
    Control("redaction.enabled", "captured output is redacted", "security_policy.enable_data_redaction",
            "enable_data_redaction = true", lambda s: bool(s["enable_data_redaction"])),
    Control("redaction.builtin", "the built-in credential rules are on",
            "security_policy.enable_builtin_redaction_rules",
            "enable_builtin_redaction_rules = true", lambda s: bool(s["enable_builtin_redaction_rules"])),
    Control("network.isolated", "sandboxes have no general egress (network mode none or allowlist)",
            "security_policy.enable_network_isolation", 'enable_network_isolation = true (or network_mode = '
            '"allowlist")', lambda s: s["network_mode"] in ("none", "allowlist")),
    Control("isolation.level", "the isolation preset is High or Maximum", "security_policy.security_level",
            'security_level = "High"', lambda s: _at_least(s["security_level"], "High")),
    Control("isolation.process", "sandboxes get private PID and IPC namespaces",
            "security_policy.enable_process_isolation", "enable_process_isolation = true",
            lambda s: bool(s["enable_process_isolation"])),
    Control("isolation.filesystem", "sandboxes get a read-only root filesystem",
            "security_policy.read_only_root", "enable_filesystem_isolation = true and read_only_root = true (the "
            "default from security_level Medium up)", lambda s: bool(s["read_only_root"])),
)}

_TRAIL = ("audit.enabled", "audit.level", "audit.keyed")
STANDARDS: dict[str, tuple[str, ...]] = {
    "SOC2": (*_TRAIL, "redaction.enabled", "network.isolated", "isolation.level"),
    "ISO27001": (*_TRAIL, "redaction.enabled", "network.isolated", "isolation.process", "isolation.filesystem"),
    "GDPR": ("audit.enabled", "audit.level", "redaction.enabled", "redaction.builtin", "network.isolated"),
    "HIPAA": (*_TRAIL, "redaction.enabled", "redaction.builtin", "network.isolated", "isolation.level"),
    "PCI-DSS": (*_TRAIL, "redaction.enabled", "redaction.builtin", "network.isolated", "isolation.level",
                "isolation.process", "isolation.filesystem"),
}


def controls_snapshot(cfg: PolicyConfig) -> dict[str, Any]:
    """The settings the controls read; no secret (the key variable's name only as a flag).

    For the audit log's ``policy.applied`` record, so a report can evaluate the
    controls without the policy file."""
    sp = cfg.security_policy
    iso = effective_isolation(sp)
    return {
        "enable_audit_logging": sp.enable_audit_logging,
        "audit_level": sp.audit_level,
        "audit_hmac_key_env": sp.audit_hmac_key_env is not None,
        "enable_data_redaction": sp.enable_data_redaction,
        "enable_builtin_redaction_rules": sp.enable_builtin_redaction_rules,
        "network_mode": iso.network_mode,
        "security_level": sp.security_level,
        "enable_process_isolation": sp.enable_process_isolation,
        "read_only_root": iso.read_only_root,
        "compliance_standards": [canonical_standard(s) or s for s in sp.compliance_standards],
    }


def canonical_standard(name: str) -> str | None:
    """The table's spelling of ``name`` (case-insensitive), or None if unknown."""
    return next((s for s in STANDARDS if s.lower() == name.lower()), None)


def suggest_standard(name: str) -> str | None:
    """A close known name: "SOC 2" → SOC2, "pci dss" → PCI-DSS, "ISO 27001" → ISO27001."""
    squash = {re.sub(r"[^a-z0-9]", "", s.lower()): s for s in STANDARDS}
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if key in squash:
        return squash[key]
    close = difflib.get_close_matches(key, list(squash), n=1, cutoff=0.6)
    return squash[close[0]] if close else None


def evaluate(standards: list[str], snapshot: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """{standard: {control id: met}} for each known standard named."""
    out: dict[str, dict[str, bool]] = {}
    for name in standards:
        std = canonical_standard(name)
        if std is not None:
            out[std] = {cid: CONTROLS[cid].met(snapshot) for cid in STANDARDS[std]}
    return out


def unmet_controls(standards: list[str], snapshot: dict[str, Any]) -> list[tuple[Control, list[str]]]:
    """[(control, the standards requiring it)] for every control not met, in table order."""
    need: dict[str, list[str]] = {}
    for std, results in evaluate(standards, snapshot).items():
        for cid, ok in results.items():
            if not ok:
                need.setdefault(cid, []).append(std)
    return [(CONTROLS[cid], need[cid]) for cid in CONTROLS if cid in need]


def describe_unmet(unmet: list[tuple[Control, list[str]]]) -> str:
    """One line per unmet control: what, who requires it, and the key that fixes it."""
    return "\n".join(f"  - {c.id} (required by {', '.join(stds)}): {c.description}; "
                     f"fix: [cleanroom.{c.key.rsplit('.', 1)[0]}] {c.fix}" for c, stds in unmet)


def require_controls(cfg: PolicyConfig) -> None:
    """Raise PolicyError listing every unmet control of the standards ``cfg`` names."""
    unmet = unmet_controls(list(cfg.security_policy.compliance_standards), controls_snapshot(cfg))
    if unmet:
        where = f"cleanroom.{cfg.environment}." if cfg.environment else "cleanroom."
        raise PolicyError(f"{len(unmet)} control(s) of the named standards not met (meet each, or remove the "
                          f"standard):\n{describe_unmet(unmet)}", file=cfg.source_file,
                          key=f"{where}security_policy.compliance_standards")
