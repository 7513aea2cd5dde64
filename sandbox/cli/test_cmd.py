"""`cleanroom test`: pytest with the cleanroom plugin, on tests/NAME or given paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click


@click.command("test", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--test", "name", default=None, help="Run tests/NAME (e.g. integration, unit).")
@click.option("--policy", default=None, type=click.Path(dir_okay=False), help="Policy file for the sandboxes.")
@click.option("--env", "env", default=None, help="Environment overlay.")
@click.option("--report", default=None, type=click.Path(dir_okay=False),
              help="Write the run report here (JSON; .html: an HTML page with plots).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test_command(name, policy, env, report, pytest_args) -> None:
    """Run pytest with cleanroom's fixtures. Extra arguments go to pytest."""
    args = [sys.executable, "-m", "pytest"]
    if name:
        target = Path("tests") / name
        if not target.exists():
            alt = Path("tests") / name.removesuffix("_tests")
            target = alt if alt.exists() else target
        if not target.exists():
            raise click.UsageError(f"no test directory {target}")
        args.append(str(target))
    if policy:
        args += ["--cleanroom-policy", policy]
    if env:
        args += ["--cleanroom-env", env]
    if report:
        args += ["--cleanroom-report", report]
    args += list(pytest_args)
    sys.exit(subprocess.call(args))
