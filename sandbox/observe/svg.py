"""Inline SVG charts for the run report: a timeline of containers, a memory and CPU plot
per sandbox, horizontal bars. Plain strings, no script and nothing fetched, so the
report is one self-contained file. Every label is escaped."""

from __future__ import annotations

import math
from html import escape
from typing import Any

MEM_COLOR, CPU_COLOR = "#2563eb", "#ea580c"
KIND_COLORS = {"sandbox": "#16a34a", "service": "#7c3aed", "failed": "#dc2626"}


def nice_step(span: float, target: int = 6) -> float:
    """A 1-2-5 step giving about ``target`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fit(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n // 2 - 1] + "…" + text[-(n // 2 - 1):]


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def timeline(rows: list[dict[str, Any]], t0: float, t1: float, width: int = 960) -> str:
    """One bar per container from its start to its end; rows: label, start, end, kind, verdict."""
    label_w, row_h, top = 230, 20, 8
    plot_w = width - label_w - 16
    span = max(t1 - t0, 1e-3)
    height = top + row_h * len(rows) + 30
    x = lambda t: label_w + (t - t0) / span * plot_w  # noqa: E731
    parts = [f'<svg class="chart timeline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'role="img" aria-label="timeline of sandboxes and services">']
    for t in _ticks(0, span):
        px = x(t0 + t)
        parts.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{height - 22}" class="grid"/>'
                     f'<text x="{px:.1f}" y="{height - 8}" class="tick" text-anchor="middle">{_num(t)} s</text>')
    for i, row in enumerate(rows):
        y = top + i * row_h
        start, end = float(row["start"]), float(row["end"])
        bx, bw = x(start), max(2.0, x(end) - x(start))
        color = KIND_COLORS["failed"] if row.get("verdict") not in (None, "passed", "running") \
            else KIND_COLORS.get(row.get("kind", "sandbox"), KIND_COLORS["sandbox"])
        short = escape(_fit(str(row["label"]), 34))
        tip = escape(f'{row["label"]} ({row.get("kind")}, {row.get("verdict") or "-"}): {end - start:.3f} s')
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" class="label" text-anchor="end">{short}</text>'
                     f'<rect class="bar bar-{escape(str(row.get("kind")))}" x="{bx:.1f}" y="{y + 3}" '
                     f'width="{bw:.1f}" height="{row_h - 6}" fill="{color}" shape-rendering="crispEdges">'
                     f'<title>{tip}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def usage_plot(samples: list[list[float | None]], title: str, width: int = 440, height: int = 184) -> str:
    """Memory (MiB, left axis) and CPU (% of one core, right axis) over time; samples: [t, mem, cpu, pids]."""
    left, right, top, bottom = 52, 46, 36, 26
    pw, ph = width - left - right, height - top - bottom
    t0, t1 = samples[0][0], samples[-1][0]
    span = max(t1 - t0, 1e-3)
    mem = [(s[0], (s[1] or 0) / 2**20) for s in samples]
    cpu = [(s[0], s[2]) for s in samples if s[2] is not None]
    mem_hi = max(1.0, max(m for _, m in mem) * 1.15)
    cpu_hi = max(10.0, max((c for _, c in cpu), default=0) * 1.15)
    x = lambda t: left + (t - t0) / span * pw  # noqa: E731
    parts = [f'<svg class="chart plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="memory and CPU of {escape(title)}">',
             # From the left edge, ~8 px a character at 12 px bold: the whole width, never clipped.
             f'<text x="4" y="14" class="title">{escape(_fit(title, (width - 8) // 8))}'
             f'<title>{escape(title)}</title></text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="area"/>']
    for v in _ticks(0, mem_hi, 4):
        py = top + ph - v / mem_hi * ph
        parts.append(f'<line x1="{left}" y1="{py:.1f}" x2="{left + pw}" y2="{py:.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{py + 4:.1f}" class="tick mem" text-anchor="end">{_num(v)}</text>')
    for v in _ticks(0, cpu_hi, 4):
        py = top + ph - v / cpu_hi * ph
        parts.append(f'<text x="{left + pw + 4}" y="{py + 4:.1f}" class="tick cpu">{_num(v)}%</text>')
    for t in _ticks(0, span, 4):
        parts.append(f'<text x="{x(t0 + t):.1f}" y="{height - 8}" class="tick" text-anchor="middle">{_num(t)} s</text>')
    for cls, points, hi, color in (("mem", mem, mem_hi, MEM_COLOR), ("cpu", cpu, cpu_hi, CPU_COLOR)):
        if not points:
            continue
        pts = " ".join(f"{x(t):.1f},{top + ph - v / hi * ph:.1f}" for t, v in points)
        parts.append(f'<polyline class="line {cls}" points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append(f'<text x="{left}" y="29" class="legend">'
                 f'<tspan fill="{MEM_COLOR}">━ memory MiB</tspan> <tspan fill="{CPU_COLOR}">━ CPU % of a core</tspan>'
                 "</text></svg>")
    return "".join(parts)


def hbars(items: list[tuple[str, float]], width: int = 520) -> str:
    """Horizontal bars, largest first (redactions by rule)."""
    items = sorted(items, key=lambda kv: -kv[1])
    label_w, row_h = 200, 22
    hi = max((v for _, v in items), default=1) or 1
    height = row_h * len(items) + 6
    parts = [f'<svg class="chart hbars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value) in enumerate(items):
        y = 3 + i * row_h
        w = max(2.0, value / hi * (width - label_w - 60))
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" class="label" text-anchor="end">{escape(label)}</text>'
                     f'<rect class="hbar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="#0891b2" shape-rendering="crispEdges"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="tick">{_num(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)
