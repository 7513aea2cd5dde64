"""`cleanroom policy check|schema`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import msgspec

from sandbox.cli.common import EXIT_POLICY, policy_options
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig, check_policy, policy_json_schema
from sandbox.policy.effects import not_enforced
from sandbox.policy.loader import policy_file_errors


@click.group("policy")
def policy_group() -> None:
    """Validate policy files and print their schema."""


@policy_group.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@policy_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file: errors, warnings, not enforced.")
def check(files: tuple[str, ...], policy: str | None, env: str | None, as_json: bool) -> None:
    """Validate policy FILES (else --policy, ./cleanroom.toml, or the built-in default).

    Prints every error of each file with its line, a warning for each risky setting,
    and each key set to a value whose effect is accepted but not enforced yet.
    Exit 0 if every file loads, 2 if any has an error.
    """
    env = env or os.environ.get("CLEANROOM_ENV") or None
    targets: list[str | None] = [*files, *([policy] if policy else [])]
    if not targets:
        targets = ["cleanroom.toml"] if Path("cleanroom.toml").is_file() else [None]
    failed = False
    for target in targets:
        cfg, errors = _load(target, env)
        failed = failed or bool(errors)
        where = target or "built-in default"
        if as_json:
            click.echo(msgspec.json.encode(_as_dict(where, env, cfg, errors)).decode())
        else:
            _print(where, cfg, errors)
    sys.exit(EXIT_POLICY if failed else 0)


def _load(target: str | None, env: str | None) -> tuple[CleanroomConfig | None, list[PolicyError]]:
    if target is not None:
        return policy_file_errors(target, overlay=env, into=CleanroomConfig, controls=True)
    if env:
        return None, [PolicyError(f"--env {env} given but no policy file (pass a FILE or --policy FILE)")]
    return CleanroomConfig.default(), []


def _print(where: str, cfg: CleanroomConfig | None, errors: list[PolicyError]) -> None:
    if errors or cfg is None:
        for err in sorted(errors, key=lambda e: e.line or 0):
            click.echo(f"cleanroom: error: {err}", err=True)
        click.echo(f"policy INVALID: {where}, {len(errors)} error(s)", err=True)
        return
    warnings = check_policy(cfg)
    notices = not_enforced(cfg)
    for w in warnings:
        click.echo(f"warning: {w.key}: {w.message}")
    for n in notices:
        click.echo(f"note: {n.key}: {n.message}")
    suffix = f" (env {cfg.environment})" if cfg.environment else ""
    note = f", {len(warnings)} warning(s)" if warnings else ""
    note += f", {len(notices)} key(s) accepted but not enforced yet" if notices else ""
    click.echo(f"policy OK: {where}{suffix}{note}")


def _as_dict(where: str, env: str | None, cfg: CleanroomConfig | None, errors: list[PolicyError]) -> dict:
    out: dict = {"file": where, "env": cfg.environment if cfg is not None else env, "ok": not errors}
    out["errors"] = [{"file": e.file, "line": e.line, "key": e.key, "message": e.reason, "allowed": e.allowed}
                     for e in errors]
    out["warnings"] = check_policy(cfg) if cfg is not None and not errors else []
    out["not_enforced"] = not_enforced(cfg) if cfg is not None and not errors else []
    return out


@policy_group.command("schema")
def schema() -> None:
    """Print a JSON Schema of the policy format, for editors."""
    click.echo(json.dumps(policy_json_schema(), indent=2))
