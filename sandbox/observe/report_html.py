"""The run report as one self-contained HTML file: summary, per-test table, a timeline of
sandboxes and services, memory and CPU plots per sandbox, alerts, breaches and
redactions by rule. Built from the JSON run report (redacted data only: names,
figures and digests, never output), every value escaped; a Content-Security-Policy
forbids fetching anything, and the one inline script only sorts the test table."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from sandbox.observe.svg import hbars, timeline, usage_plot

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
.muted{color:#6b7280}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}.ok{color:#15803d}.bad{color:#b91c1c}
table{border-collapse:collapse;font-size:13px;max-width:100%}td:first-child{overflow-wrap:anywhere}
th,td{padding:4px 10px;border-bottom:1px solid #f3f4f6;text-align:left}
th{background:#f9fafb;cursor:pointer;user-select:none}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}.plots{display:flex;flex-wrap:wrap;gap:14px}
svg .grid{stroke:#e5e7eb;stroke-width:1}svg .tick,svg .label,svg .legend{font-size:11px;fill:#374151}
svg .title{font-size:12px;font-weight:600;fill:#111827}svg .area{fill:#f9fafb;stroke:#d1d5db}
"""

# Sorts the per-test table by the clicked column (numbers by value); nothing else runs.
_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1;
    th.dataset.dir = dir === 1 ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _mib(n: Any) -> str:
    return "–" if not n else f"{n / 2**20:.1f} MiB"


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_) + "</tr>" for rows_ in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: Any, num: bool = False, sort: Any = None) -> str:
    attrs = ' class="num"' if num else ""
    if sort is not None:
        attrs += f' data-v="{escape(str(sort))}"'
    return f"<td{attrs}>{escape(str(value))}</td>"


def _sandboxes(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(t["nodeid"], s) for t in report.get("tests", []) for s in t.get("sandboxes", [])]


def _summary(report: dict[str, Any]) -> str:
    t = report.get("totals", {})
    audit = t.get("audit_verified")
    audit_text = "verified" if audit is True else "FAILED" if audit is False else "n/a"
    alerts = [a for a in report.get("environment", {}).get("alerts", []) if a.get("state") == "firing"]
    cards = [("tests", t.get("tests", 0), ""), ("passed", t.get("passed", 0), "ok"),
             ("failed", t.get("failed", 0), "bad" if t.get("failed") else ""), ("skipped", t.get("skipped", 0), ""),
             ("duration", f'{t.get("duration_seconds", 0)} s', ""), ("sandboxes", t.get("sandboxes", 0), ""),
             ("containers created / reused", f'{t.get("containers_created", 0)} / {t.get("containers_reused", 0)}', ""),
             ("peak memory", _mib(t.get("peak_memory_bytes")), ""),
             ("alerts", len(alerts), "bad" if alerts else ""),
             ("audit trail", audit_text, "ok" if audit is True else "bad" if audit is False else "")]
    return '<div class="cards">' + "".join(
        f'<div class="card"><span class="muted">{escape(k)}</span><b class="{c}">{escape(str(v))}</b></div>'
        for k, v, c in cards) + "</div>"


def _tests(report: dict[str, Any]) -> str:
    rows = []
    for t in report.get("tests", []):
        sbs = t.get("sandboxes", [])
        peak = max((s.get("peak_memory_bytes") or 0 for s in sbs), default=0)
        red = sum((t.get("redactions") or {}).values())
        rows.append([_td(t["nodeid"]), _td(t["outcome"]), _td(f'{t.get("duration", 0):.3f}', True),
                     _td(len(sbs), True), _td(_mib(peak), True, peak), _td(red, True),
                     f'<td><code>{escape(t.get("trace_id") or "")}</code></td>'])
    headers = ["test", "outcome", "seconds", "sandboxes", "peak memory", "redactions", "trace id"]
    if not any(t.get("trace_id") for t in report.get("tests", [])):  # tracing was off: no empty column
        headers, rows = headers[:-1], [r[:-1] for r in rows]
    return _table(headers, rows, "sortable")


def _timeline(report: dict[str, Any]) -> tuple[str, int]:
    rows = [{"label": s["name"], "start": s["started"], "end": s["ended"], "kind": "sandbox",
             "verdict": s.get("verdict")} for _, s in _sandboxes(report) if s.get("started") and s.get("ended")]
    end_of_run = max([r["end"] for r in rows] + [report.get("totals", {}).get("finished") or 0])
    for svc in report.get("environment", {}).get("services", []):
        if svc.get("started"):
            rows.append({"label": svc["name"], "start": svc["started"], "end": svc.get("ended") or end_of_run,
                         "kind": "service", "verdict": "running" if not svc.get("ended") else "passed"})
    if not rows:
        return '<p class="muted">no sandbox or service was timed</p>', 0
    rows.sort(key=lambda r: r["start"])
    t0 = min(r["start"] for r in rows)
    t1 = max(r["end"] for r in rows)
    return timeline(rows, t0, t1), len(rows)


def _plots(report: dict[str, Any]) -> str:
    charts = [usage_plot(s["timeseries"], f'{s["name"]} ({nodeid.rsplit("::", 1)[-1]})')
              for nodeid, s in _sandboxes(report) if len(s.get("timeseries") or []) >= 2]
    charts += [usage_plot(svc["timeseries"], f'{svc["name"]} (service)')
               for svc in report.get("environment", {}).get("services", []) if len(svc.get("timeseries") or []) >= 2]
    if not charts:
        return ('<p class="muted">no time series: set performance_monitoring.enable_memory_tracking = true '
                "(samples every metrics_interval)</p>")
    return '<div class="plots">' + "".join(charts) + "</div>"


def _alerts(report: dict[str, Any]) -> str:
    rows = [[_td(time.strftime("%H:%M:%S", time.localtime(a["at"]))), _td(a["state"]), _td(a["threshold"]),
             _td(a["subject"]), _td(a["message"])] for a in report.get("environment", {}).get("alerts", [])]
    return _table(["at", "state", "threshold", "subject", "message"], rows)


def _breaches(report: dict[str, Any]) -> str:
    rows = [[_td(nodeid), _td(s["name"]), _td(b.get("limit")), _td(b.get("limit_value"), True),
             _td(b.get("observed"), True), _td(b.get("detail", ""))]
            for nodeid, s in _sandboxes(report) for b in s.get("breaches", [])]
    return _table(["test", "sandbox", "limit", "limit value", "observed", "detail"], rows)


def _redactions(report: dict[str, Any]) -> str:
    counts = report.get("totals", {}).get("redactions") or {}
    if not counts:
        return '<p class="muted">nothing was masked</p>'
    return hbars([(k, float(v)) for k, v in counts.items()])


def render(report: dict[str, Any], title: str = "cleanroom run report") -> str:
    env = report.get("environment", {})
    tl, bars = _timeline(report)
    generated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.get("totals", {}).get("finished")
                                                                  or time.time()))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body data-timeline-bars="{bars}">
<h1>{escape(title)}</h1>
<div class="muted">{escape(generated)} · environment <code>{escape(str(env.get("id", "–")))}</code>
 · audit log <code>{escape(str(report.get("totals", {}).get("audit_log") or "–"))}</code></div>
<h2>Summary</h2>{_summary(report)}
<h2>Tests</h2>{_tests(report)}
<h2>Timeline of sandboxes and services</h2>{tl}
<h2>Memory and CPU per sandbox</h2>{_plots(report)}
<h2>Alerts</h2>{_alerts(report)}
<h2>Limit breaches</h2>{_breaches(report)}
<h2>Redactions by rule</h2>{_redactions(report)}
<script>{_SCRIPT}</script>
</body></html>
"""
