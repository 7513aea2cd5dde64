"""Rules a typed policy must satisfy beyond its types: valid CIDRs, regexes and
capability names, cross-key constraints, process isolation vs the security level,
and the controls of each named compliance standard.

Every rule reports through ``fail(path, message, allowed)`` and carries on, so one
pass names every problem of a file. A cross-key rule is skipped when one of its keys
already had an error (``had_error``): its default stood in, and a complaint built
on a stand-in would send the user after the wrong line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from sandbox.errors import PolicyError
from sandbox.policy.compliance import (
    STANDARDS,
    canonical_standard,
    controls_snapshot,
    describe_unmet,
    suggest_standard,
    unmet_controls,
)
from sandbox.policy.isolation import CAPABILITIES, normalise_capability
from sandbox.policy.model import PolicyConfig
from sandbox.redact.dialect import DIALECT, PatternError, compile_pattern
from sandbox.redact.pack import BUILTIN_IDS, policy_rules, unknown_rule_ids

Fail = Callable[..., object]  # fail(path, message, allowed)

# Levels at which the host's process table must stay out of sight.
PROCESS_ISOLATION_REQUIRED = ("High", "Maximum")


def check_rules(cfg: PolicyConfig, fail: Fail, had_error: Callable[[str], bool], *, controls: bool = False) -> None:
    """Cross-key rules. With ``controls``, also every control of the named compliance
    standards (checked where a policy is about to be enforced or reviewed: an
    environment opening, `policy check`; parsing alone only checks the names)."""
    sp = cfg.security_policy
    for field in ("blocked_addresses", "allowed_addresses"):
        for i, cidr in enumerate(getattr(sp, field)):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                fail(["security_policy", field, i], f"{cidr!r} is not a valid CIDR",
                     'IPv4 or IPv6 networks like "10.0.0.0/8" or "fd00::/8"')
    _check_redaction(sp, fail)
    for i, cap in enumerate(sp.allowed_capabilities or []):
        if normalise_capability(cap) not in CAPABILITIES:
            fail(["security_policy", "allowed_capabilities", i], f"unknown capability {cap!r}",
                 "Linux capability names such as CHOWN or CAP_NET_BIND_SERVICE")
    if (sp.network_mode == "allowlist" and not sp.allowed_addresses
            and not had_error("security_policy.allowed_addresses")):
        fail(["security_policy", "allowed_addresses"], "network_mode \"allowlist\" needs at least one address",
             "a list of CIDRs the sandbox may reach")
    if sp.audit_hmac_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", sp.audit_hmac_key_env):
        fail(["security_policy", "audit_hmac_key_env"], f"{sp.audit_hmac_key_env!r} is not a variable name",
             "an environment variable name like CLEANROOM_AUDIT_KEY")
    sb = cfg.resource_limits.sandbox
    if (sb.memory_swap_bytes is not None and sb.memory_bytes is not None and sb.memory_swap_bytes < sb.memory_bytes
            and not had_error("resource_limits.sandbox.memory_bytes")):
        fail(["resource_limits", "sandbox", "memory_swap_bytes"],
             f"memory+swap ({sb.memory_swap_bytes}) is below memory ({sb.memory_bytes})",
             "a value >= resource_limits.sandbox.memory_bytes")
    if (not sp.enable_process_isolation and sp.security_level in PROCESS_ISOLATION_REQUIRED
            and not had_error("security_policy.security_level")):
        fail(["security_policy", "enable_process_isolation"],
             f"process isolation cannot be off at security_level {sp.security_level}: the sandbox would see "
             "and signal the host's processes",
             "true at High and Maximum; false only at Minimal, Low or Medium")
    if sp.allow_unconfined and sp.security_level in PROCESS_ISOLATION_REQUIRED \
            and not had_error("security_policy.security_level"):
        fail(["security_policy", "allow_unconfined"],
             f"running without cgroup limits cannot be allowed at security_level {sp.security_level}",
             "false at High and Maximum; true only at Minimal, Low or Medium")
    if cfg.deterministic_clock and not cfg.enable_deterministic_execution:
        fail(["deterministic_clock"], "a frozen clock is part of deterministic execution, which is off",
             "set enable_deterministic_execution = true, or remove deterministic_clock")
    _check_compliance(cfg, fail, had_error, controls)


def _check_redaction(sp, fail: Fail) -> None:
    """Redaction patterns compile in the redactor's own dialect; disabled ids name
    built-in rules; extra rules pass the same validation as the built-in pack."""
    for i, pattern in enumerate(sp.redaction_patterns):
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            fail(["security_policy", "redaction_patterns", i], f"invalid regular expression: {exc}", DIALECT)
    for i, rid, hint in unknown_rule_ids(sp.redaction_rules_disabled, BUILTIN_IDS):
        fail(["security_policy", "redaction_rules_disabled", i], f"unknown built-in rule {rid!r}{hint}",
             "ids of built-in rules such as aws_access_key_id (see sandbox/redact/pack/*.toml)")
    try:
        policy_rules(sp.redaction_rules, BUILTIN_IDS)
    except PolicyError as exc:
        path: list[str | int] = ["security_policy"]
        for part in re.findall(r"\.([A-Za-z_]+)|\[(\d+)\]", "." + (exc.key or "").split("security_policy", 1)[-1]):
            path.append(part[0] if part[0] else int(part[1]))
        fail(path, exc.reason, exc.allowed)


def _check_compliance(cfg: PolicyConfig, fail: Fail, had_error: Callable[[str], bool], controls: bool) -> None:
    names = cfg.security_policy.compliance_standards
    known = []
    for i, name in enumerate(names):
        if canonical_standard(name) is None:
            close = suggest_standard(name)
            hint = f" (did you mean {close!r}?)" if close else ""
            fail(["security_policy", "compliance_standards", i], f"unknown compliance standard {name!r}{hint}",
                 ", ".join(STANDARDS))
        else:
            known.append(name)
    if not controls:
        return
    # A control whose key had an error is judged on a default: skip the verdict.
    unmet = [(c, stds) for c, stds in unmet_controls(known, controls_snapshot(cfg)) if not had_error(c.key)]
    if unmet:
        fail(["security_policy", "compliance_standards"],
             f"{len(unmet)} control(s) of the named standards not met (meet each, or remove the standard):\n"
             f"{describe_unmet(unmet)}", None)
