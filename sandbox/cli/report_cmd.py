"""`cleanroom report render`: the JSON run report (from --cleanroom-report or
`cleanroom test --report`) as one self-contained HTML page with plots."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.observe.run_report import write_report


@click.group("report")
def report_group() -> None:
    """Run reports written by the pytest plugin."""


@report_group.command("render")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where the HTML goes (default: SOURCE with .html).")
def render_command(source: Path, output: Path | None) -> None:
    """Render SOURCE (a JSON run report) as HTML: summary, tests, timeline, memory and CPU plots,
    alerts, breaches and redactions. Nothing in it is fetched from anywhere."""

    try:
        report = json.loads(source.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.ClickException(f"{source} is not a JSON run report: {exc}") from None
    if not isinstance(report, dict) or "tests" not in report:
        raise click.ClickException(f"{source} is not a run report (no \"tests\"); write one with "
                                   "pytest --cleanroom-report report.json")
    out = output or source.with_suffix(".html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise click.UsageError(f"{out}: the output must end in .html")
    write_report(out, report)
    click.echo(str(out))
