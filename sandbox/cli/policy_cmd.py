"""`cleanroom policy check|schema`."""

from __future__ import annotations

import json
import sys

import click
import msgspec

from sandbox.cli.common import load_config, policy_options


@click.group("policy")
def policy_group() -> None:
    """Validate policy files and print their schema."""


@policy_group.command("check")
@policy_options
@click.option("--json", "as_json", is_flag=True, help="Print warnings as JSON.")
def check(policy: str | None, env: str | None, as_json: bool) -> None:
    """Validate a policy; warn about each risky setting. Exit 0 if it loads, 2 if not."""
    from sandbox.policy import check_policy

    config = load_config(policy, env)  # exits 2 with the PolicyError on bad input
    warnings = check_policy(config)
    where = config.source_file or "built-in default"
    if as_json:
        click.echo(msgspec.json.encode({"file": where, "env": config.environment,
                                        "warnings": warnings}).decode())
        sys.exit(0)
    for w in warnings:
        click.echo(f"warning: {w.key}: {w.message}")
    suffix = f" (env {config.environment})" if config.environment else ""
    note = f", {len(warnings)} warning(s)" if warnings else ""
    click.echo(f"policy OK: {where}{suffix}{note}")


@policy_group.command("schema")
def schema() -> None:
    """Print a JSON Schema of the policy format, for editors."""
    from sandbox.policy import policy_json_schema

    click.echo(json.dumps(policy_json_schema(), indent=2))
