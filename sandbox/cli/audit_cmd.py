"""`cleanroom audit verify FILE [--head HASH] [--allow-unsealed]` and `cleanroom audit report FILE`."""

from __future__ import annotations

import os
import sys

import click
import msgspec

from sandbox.audit import verify_audit_log
from sandbox.audit.report import build_report, render_text
from sandbox.errors import PolicyError


@click.group("audit")
def audit_group() -> None:
    """Audit trails: verify their hash chain; report the evidence for a standard."""


def _key(key_env: str | None) -> bytes | None:
    """The HMAC key from the variable named, or exit 2 when it is not set."""
    if not key_env:
        return None
    value = os.environ.get(key_env)
    if not value:
        click.echo(f"cleanroom: error: --key-env {key_env}: variable not set", err=True)
        sys.exit(2)
    return value.encode()


@audit_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key-env", default=None, metavar="NAME", help="Variable holding the HMAC key of a keyed log.")
@click.option("--head", "head", default=None, metavar="HASH",
              help="A head hash kept elsewhere (from the run's summary): it must be in the chain.")
@click.option("--allow-unsealed", is_flag=True,
              help="Accept a log without a seal (the writer was killed); the report still says so.")
@click.option("--json", "as_json", is_flag=True)
def verify(file: str, key_env: str | None, head: str | None, allow_unsealed: bool, as_json: bool) -> None:
    """Exit 0 if FILE's chain is intact and sealed, 1 naming what is wrong, 2 if unreadable.

    A log without its seal is reported as unsealed, with the last record the writer
    got to; deleting a sealed log's last records removes the seal, so it shows here.
    """
    key = _key(key_env)
    try:
        result = verify_audit_log(file, key=key, head=head, allow_unsealed=allow_unsealed)
    except OSError as exc:
        click.echo(f"cleanroom: error: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(msgspec.json.encode(result).decode())
    else:
        _report(file, result)
    sys.exit(0 if result.ok else 1)


def _report(file: str, result) -> None:
    if result.problem in ("tampered", "truncated"):
        click.echo(f"{result.problem.upper()}: {file}: record seq {result.first_bad_seq} "
                   f"(line {result.first_bad_line}): {result.reason}", err=True)
        return
    if not result.ok:
        hint = "; pass --allow-unsealed for the log of a killed run" if result.problem == "unsealed" else ""
        click.echo(f"{result.problem.upper()}: {file}: {result.reason}{hint}", err=True)
        return
    state = "sealed" if result.sealed else result.reason
    anchor = f", anchored at seq {result.anchored_seq}" if result.anchored_seq is not None else ""
    click.echo(f"OK: {result.records} records, chain intact, {state}{anchor} ({file})\nhead {result.head}")


@audit_group.command("report")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--standard", "standards", multiple=True, required=True, metavar="NAME",
              help="SOC2, ISO27001, GDPR, HIPAA or PCI-DSS (repeatable).")
@click.option("--key-env", default=None, metavar="NAME", help="Variable holding the HMAC key of a keyed log.")
@click.option("--policy", default=None, type=click.Path(dir_okay=False),
              help="Policy file to read the controls from when the log carries none (its digest must match).")
@click.option("--env", default=None, help="Overlay of --policy.")
@click.option("--json", "as_json", is_flag=True)
def report(file: str, standards: tuple[str, ...], key_env: str | None, policy: str | None, env: str | None,
           as_json: bool) -> None:
    """Print the evidence a reviewer asks for: controls in force, chain verified and keyed,
    breaches and redactions. Exit 0 if complete, 1 if anything is missing, 2 on bad input."""
    key = _key(key_env)
    try:
        evidence = build_report(file, list(standards), key=key, policy=policy, env=env)
    except PolicyError as exc:
        click.echo(f"cleanroom: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"cleanroom: error: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(2)
    click.echo(msgspec.json.encode(evidence).decode() if as_json else render_text(evidence))
    sys.exit(0 if evidence.complete else 1)
