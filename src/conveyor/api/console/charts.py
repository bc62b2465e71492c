"""Line charts as inline SVG, drawn on the server: no chart library in the
browser, and the chart is in the page's markup (with a text summary for
screen readers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[datetime, float]]
    css_class: str


def _nice_max(value: float) -> float:
    """A round ceiling for the y axis (1, 2, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _format(value: float, unit: str) -> str:
    if unit == "bytes":
        for size, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:g} {unit}".strip()


def line_chart(title: str, series: Sequence[Series], unit: str) -> str:
    """An SVG chart of ``series`` over time; a note when there is nothing to draw."""
    points = [p for s in series for p in s.points]
    label = escape(title)
    if not points:
        return f'<p class="chart-empty">{label}: no samples yet (recorded while change capture runs).</p>'
    start = min(t for t, _ in points)
    end = max(t for t, _ in points)
    span = max((end - start).total_seconds(), 1.0)
    top = _nice_max(max(v for _, v in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t - start).total_seconds() / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    latest = ", ".join(f"{s.label} {_format(s.points[-1][1], unit)}" for s in series if s.points)
    summary = f"{title}, {start:%H:%M:%S} to {end:%H:%M:%S} UTC; latest: {latest}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary)}">',
        f"<title>{escape(summary)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        gy = y(top * fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(_format(top * fraction, unit))}</text>"
        )
    base = HEIGHT - BOTTOM + 16
    parts.append(f'<text class="axis" x="{LEFT}" y="{base}">{start:%H:%M:%S}</text>')
    parts.append(f'<text class="axis" x="{WIDTH - RIGHT}" y="{base}" text-anchor="end">{end:%H:%M:%S}</text>')
    for s in series:
        if not s.points:
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
        parts.append(f'<polyline class="{s.css_class}" points="{coords}"/>')
        if len(s.points) == 1:
            t, v = s.points[0]
            parts.append(f'<circle class="{s.css_class}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3"/>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch {s.css_class}"></span>{escape(s.label)}</li>' for s in series)
    return (
        f'<figure><figcaption>{label}</figcaption>{"".join(parts)}<ul class="legend">{legend}</ul></figure>'
    )


def task_charts(samples: Sequence[dict[str, object]]) -> list[str]:
    """The task page's charts: CDC latency (source and target) and retained WAL."""

    def series(key: str) -> list[tuple[datetime, float]]:
        out = []
        for row in samples:
            value, when = row.get(key), row.get("at")
            if isinstance(value, int | float) and isinstance(when, datetime):
                out.append((when, float(value)))
        return out

    latency = line_chart(
        "CDC latency",
        [
            Series("source (CDCLatencySource)", series("latency_source"), "s-source"),
            Series("target (CDCLatencyTarget)", series("latency_target"), "s-target"),
        ],
        "s",
    )
    wal = line_chart("Retained WAL", [Series("retained WAL", series("retained_wal_bytes"), "s-wal")], "bytes")
    return [latency, wal]
