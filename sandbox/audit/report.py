"""The evidence a compliance reviewer asks for, read from one audit log: which
controls were in force, whether the chain verifies and is keyed, and what the run
recorded (sandboxes, limit breaches, redactions, refused network requests).

Controls come from the log itself when its ``policy.applied`` record carries a
controls snapshot (see sandbox/policy/compliance.py); otherwise from a policy file
(given, or the one the log names) whose digest matches the log's, never from a
file that does not match. Counts and rule names only: no output, no secret.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from sandbox.audit.verify import verify_audit_log
from sandbox.errors import PolicyError
from sandbox.policy.compliance import CONTROLS, STANDARDS, canonical_standard, controls_snapshot
from sandbox.policy.config import CleanroomConfig


class ControlEvidence(msgspec.Struct):
    id: str
    description: str
    met: bool | None  # None: no trustworthy source of the settings
    fix: str


class Evidence(msgspec.Struct):
    file: str
    standards: list[str]
    records: int
    chain_verified: bool
    chain_problem: str
    keyed: bool | None  # None: cannot tell (no key given and unkeyed verification failed)
    environments: list[str]
    policy_files: list[str]
    policy_digests: list[str]
    controls_source: str
    controls: dict[str, list[ControlEvidence]]
    sandboxes: int
    breaches: dict[str, int]
    redactions: dict[str, int]
    network_refusals: int
    complete: bool
    gaps: list[str]


def build_report(path: str | Path, standards: list[str], *, key: bytes | None = None,
                 policy: str | Path | None = None, env: str | None = None) -> Evidence:
    """Raises PolicyError for an unknown standard, OSError for an unreadable file."""
    names = []
    for name in standards:
        std = canonical_standard(name)
        if std is None:
            raise PolicyError(f"unknown compliance standard {name!r}", key="--standard", allowed=", ".join(STANDARDS))
        names.append(std)
    records = _records(Path(path))
    verified, problem, keyed = _verify(path, key)
    opened = [r["data"] for r in records if r.get("event") == "environment.opened"]
    applied = [r["data"] for r in records if r.get("event") == "policy.applied"]
    digests = sorted({d.get("digest") for d in applied if d.get("digest")})
    snapshot, source = _snapshot(applied, opened, digests, policy, env)
    controls = {std: [ControlEvidence(cid, CONTROLS[cid].description,
                                      CONTROLS[cid].met(snapshot) if snapshot is not None else None, CONTROLS[cid].fix)
                      for cid in STANDARDS[std]] for std in names}
    breaches = Counter(str(r["data"].get("limit")) for r in records if r.get("event") == "limit.breach")
    redactions: Counter[str] = Counter()
    for r in records:
        if r.get("event") == "redaction.counts":
            redactions.update({str(k): int(v) for k, v in (r["data"].get("counts") or {}).items()})
    gaps = _gaps(verified, problem, keyed, names, controls, source)
    return Evidence(
        file=str(path), standards=names, records=len(records), chain_verified=verified, chain_problem=problem,
        keyed=keyed, environments=sorted({str(d.get("environment")) for d in opened}),
        policy_files=sorted({str(d.get("policy_file")) for d in opened if d.get("policy_file")}),
        policy_digests=digests, controls_source=source, controls=controls,
        sandboxes=sum(1 for r in records if r.get("event") == "sandbox.created"),
        breaches=dict(sorted(breaches.items())), redactions=dict(sorted(redactions.items())),
        network_refusals=sum(1 for r in records if r.get("event") == "network.refused"),
        complete=not gaps, gaps=gaps,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the verifier names the bad line; counts use what can be read
        if isinstance(rec, dict) and isinstance(rec.get("data"), dict):
            out.append(rec)
    return out


def _verify(path: str | Path, key: bytes | None) -> tuple[bool, str, bool | None]:
    """(chain verified, the problem if not, keyed)."""
    plain = verify_audit_log(path)
    if key is not None:
        keyed_result = verify_audit_log(path, key=key)
        if keyed_result.ok:
            return True, "", True
        if plain.ok:
            return True, "", False  # a plain SHA-256 chain: the key given plays no part
        return False, keyed_result.reason, None
    if plain.ok:
        return True, "", False
    return False, plain.reason + " (if the log is HMAC-keyed, pass its key)", None


def _snapshot(applied: list[dict], opened: list[dict], digests: list[str], policy: str | Path | None,
              env: str | None) -> tuple[dict[str, Any] | None, str]:
    carried = [d["controls"] for d in applied if isinstance(d.get("controls"), dict)]
    if carried and all(c == carried[0] for c in carried):
        return carried[0], "the audit log's policy.applied record"
    if len(digests) != 1:
        return None, "unknown: the log has no single policy digest (audit level below Medium?)"
    if policy is None:
        named = [d for d in opened if d.get("policy_file")]
        if not named:
            return None, "unknown: the log names no policy file and none was given (--policy)"
        policy, env = named[0]["policy_file"], env or named[0].get("policy_env")
    try:
        cfg = CleanroomConfig.from_file(policy, env or "")
    except PolicyError as exc:
        return None, f"unknown: {exc}"
    if cfg.digest() != digests[0]:
        return None, f"unknown: {policy} does not match the log's policy digest (changed since the run?)"
    return controls_snapshot(cfg), f"{policy} (digest matches the log)"


def _gaps(verified: bool, problem: str, keyed: bool | None, names: list[str],
          controls: dict[str, list[ControlEvidence]], source: str) -> list[str]:
    gaps = [] if verified else [f"chain not verified: {problem}"]
    if any("audit.keyed" in STANDARDS[s] for s in names) and keyed is not True:
        gaps.append("the chain is not shown to be HMAC-keyed" + (" (pass its key)" if keyed is None else ""))
    if source.startswith("unknown"):
        gaps.append(f"controls in force: {source}")
    unmet = sorted({c.id for cs in controls.values() for c in cs if c.met is False})
    if unmet:
        gaps.append(f"controls not met: {', '.join(unmet)}")
    return gaps


def render_text(ev: Evidence) -> str:
    lines = [f"audit report: {ev.file} ({', '.join(ev.standards)})",
             f"  environments: {', '.join(ev.environments) or 'none recorded'}"
             + (f"; policy {', '.join(ev.policy_files)}" if ev.policy_files else "")
             + (f"; digest {', '.join(d[:16] for d in ev.policy_digests)}" if ev.policy_digests else "")]
    chain = "verified" if ev.chain_verified else f"NOT verified ({ev.chain_problem})"
    keyed = {True: "HMAC-keyed", False: "not keyed (plain SHA-256)", None: "keying unknown"}[ev.keyed]
    lines.append(f"  chain: {chain}, {ev.records} records, {keyed}")
    lines.append(f"  controls in force (from {ev.controls_source}):")
    for std, controls in ev.controls.items():
        for c in controls:
            mark = {True: "met  ", False: "UNMET", None: "?    "}[c.met]
            fix = f"; fix: {c.fix}" if c.met is False else ""
            lines.append(f"    [{mark}] {std} {c.id}: {c.description}{fix}")
    lines.append(f"  sandboxes: {ev.sandboxes}; limit breaches: {_counts(ev.breaches)}; "
                 f"redactions: {_counts(ev.redactions)}; network refusals: {ev.network_refusals}")
    lines.append("  evidence: complete" if ev.complete else "  evidence: INCOMPLETE\n" +
                 "\n".join(f"    - {g}" for g in ev.gaps))
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total}" + (f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else "")
