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
@click.option("--shard", default=None, metavar="K/N", help="Run only shard K of N (e.g. one CI runner's share).")
@click.option("--durations", default=None, type=click.Path(dir_okay=False),
              help="Balance shards by the durations in this JSON report (every shard the same file).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test_command(name, policy, env, report, shard, durations, pytest_args) -> None:
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
    # One token each (--opt=value): pytest takes any separate argument naming an existing
    # file as a test path when it picks its rootdir, which would change every node id.
    if policy:
        args.append(f"--cleanroom-policy={policy}")
    if env:
        args.append(f"--cleanroom-env={env}")
    if report:
        args.append(f"--cleanroom-report={report}")
    if shard:
        args.append(f"--cleanroom-shard={shard}")
    if durations:
        args.append(f"--cleanroom-durations={durations}")
    args += list(pytest_args)
    sys.exit(subprocess.call(args))
