"""`cleanroom report merge A.json B.json … -o ALL.json` (one report from a sharded run's reports)
and `cleanroom report render REPORT.json` (the run report as one self-contained HTML page with plots)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sandbox.cli.common import EXIT_POLICY, die
from sandbox.observe.run_report import write_report
from sandbox.testing.reports import ReportError, merge_reports


@click.group("report")
def report_group() -> None:
    """JSON run reports (--cleanroom-report / cleanroom test --report)."""


@report_group.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Write the merged report here.")
@click.option("--allow-missing", is_flag=True, help="Merge even when some shard's report is not among REPORTS.")
def merge(reports: tuple[str, ...], output: str, allow_missing: bool) -> None:
    """Merge the reports of one sharded run: every test once, totals, a summary per shard.

    Exits 2 when the reports are not one split of one run (a test in two shards, shards
    split with another N or other durations), 1 when a shard's report is missing.
    """
    try:
        merged = merge_reports(list(reports))
    except ReportError as exc:
        die(str(exc), EXIT_POLICY)
    Path(output).write_text(json.dumps(merged, indent=2), encoding="utf-8")
    t = merged["totals"]
    click.echo(f"{len(merged['shards'])} reports → {output}: {t['tests']} tests, {t['passed']} passed, "
               f"{t['failed']} failed, {t['skipped']} skipped; longest shard {t['longest_shard_seconds']} s")
    for s in merged["shards"]:
        click.echo(f"  {s.get('shard', '-'):>7}  {s['tests']:>5} tests  {s['failed']:>4} failed  "
                   f"{s['duration_seconds']} s  {s['report']}")
    missing = merged.get("shards_missing")
    if missing:
        click.echo(f"cleanroom: warning: no report from shard(s) {', '.join(map(str, missing))}: "
                   f"their tests are not in {output}", err=True)
        if not allow_missing:
            sys.exit(1)
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
