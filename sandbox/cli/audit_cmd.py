"""`cleanroom audit verify FILE`."""

from __future__ import annotations

import os
import sys

import click
import msgspec

from sandbox.audit.report import build_report, render_text
from sandbox.errors import PolicyError


@click.group("audit")
def audit_group() -> None:
    """Audit trails: verify their hash chain."""


@audit_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key-env", default=None, metavar="NAME", help="Variable holding the HMAC key of a keyed log.")
@click.option("--json", "as_json", is_flag=True)
def verify(file: str, key_env: str | None, as_json: bool) -> None:
    """Exit 0 if FILE's chain is intact, 1 naming the first bad record, 2 if unreadable."""
    from sandbox.audit import verify_audit_log

    key = None
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            click.echo(f"cleanroom: error: --key-env {key_env}: variable not set", err=True)
            sys.exit(2)
        key = value.encode()
    try:
        result = verify_audit_log(file, key=key)
    except OSError as exc:
        click.echo(f"cleanroom: error: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(msgspec.json.encode(result).decode())
    elif result.ok:
        click.echo(f"OK: {result.records} records, chain intact ({file})")
    else:
        click.echo(f"TAMPERED: {file}: record seq {result.first_bad_seq} (line {result.first_bad_line}): "
                   f"{result.reason}", err=True)
    sys.exit(0 if result.ok else 1)


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
    key = None
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            click.echo(f"cleanroom: error: --key-env {key_env}: variable not set", err=True)
            sys.exit(2)
        key = value.encode()
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
