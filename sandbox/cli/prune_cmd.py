"""`cleanroom prune`: remove what a crashed (even SIGKILLed) run left behind."""

from __future__ import annotations

import click
import msgspec

from sandbox.cli.common import EXIT_ENGINE, die
from sandbox.engine.teardown.prune import prune
from sandbox.errors import EngineUnavailable


def prune_main(as_json: bool, url: str | None, remove_all: bool) -> int:
    try:
        report = prune(url=url, include_live=remove_all)
    except EngineUnavailable as exc:
        die(str(exc), EXIT_ENGINE)
    if as_json:
        click.echo(msgspec.json.encode(report).decode())
        return 0
    for kind, items in (("container", report.containers), ("network", report.networks),
                        ("cgroup", report.cgroups)):
        for item in items:
            click.echo(f"removed {kind} {item}")
    for item in report.kept:
        click.echo(f"kept {item}")
    total = len(report.containers) + len(report.networks) + len(report.cgroups)
    click.echo(f"prune: removed {total} orphan(s)" if total else "prune: nothing to remove")
    return 0
