"""Inline SVG charts for the HTML report: plain strings, sized in CSS pixels, no scripts.

The report must be one self-contained file that renders the same in a browser, a mail client
and a headless screenshot, so the charts are drawn here rather than by a charting library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html import escape

AXIS = "#8a94a6"
GRID = "#e3e7ee"
TEXT = "#3b4252"


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float]


def number(text: str) -> float:
    """A decimal string from the document as a float for pixel arithmetic; a malformed or empty
    figure draws as zero rather than failing the whole report."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return 0.0
    return float(value) if value.is_finite() else 0.0


def compact(value: float) -> str:
    """Axis and bar labels: 1.2M, 350k, 12 (the tables carry the exact figures)."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            scaled = value / limit
            return f"{sign}{scaled:.1f}{suffix}" if scaled < 100 else f"{sign}{scaled:.0f}{suffix}"
    return f"{sign}{value:.0f}" if value >= 10 or value == int(value) else f"{sign}{value:.2f}"


def _nice_max(value: float) -> float:
    """The axis top: the next 1, 2, 2.5 or 5 x 10^n at or above value, so ticks read as round numbers."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _open(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts: list[str] = []
    for item in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{item.colour}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11" fill="{TEXT}">{escape(item.name)}</text>')
        x += 24 + 7 * len(item.name)
    return parts


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, top_value: float) -> list[str]:
    parts: list[str] = []
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="{AXIS}">'
            f"{compact(value)}</text>"
        )
    return parts


def _empty(parts: list[str], width: int, height: int, message: str) -> str:
    parts.append(
        f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" font-size="12" text-anchor="middle" fill="{AXIS}">'
        f"{escape(message)}</text></svg>"
    )
    return "".join(parts)


def stacked_bars(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 720, height: int = 220,
    label_every: int = 1, empty: str = "no data",
) -> str:
    """Vertical bars, one per label, each series stacked on the previous one."""
    parts = _open(width, height, title)
    left, top, right, bottom = 52.0, 24.0, 8.0, 26.0
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series if i < len(s.values)) for i in range(len(labels))]
    parts += _legend(series, left, 12)
    if not labels or max(totals, default=0) <= 0:
        return _empty(parts, width, height, empty)
    top_value = _nice_max(max(totals))
    parts += _y_axis(left, top, plot_w, plot_h, top_value)
    slot = plot_w / len(labels)
    bar_w = max(slot * 0.72, 1.0)
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        base = top + plot_h
        for item in series:
            value = item.values[i] if i < len(item.values) else 0.0
            if value <= 0:
                continue
            h = plot_h * value / top_value
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{item.colour}">'
                f"<title>{escape(label)} {escape(item.name)}: {value:.0f}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 10:.1f}" font-size="10" text-anchor="middle" '
                f'fill="{AXIS}">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{left:.1f}" y1="{top + plot_h:.1f}" x2="{left + plot_w:.1f}" y2="{top + plot_h:.1f}" '
        f'stroke="{AXIS}"/></svg>'
    )
    return "".join(parts)


def bars(
    labels: Sequence[str], values: Sequence[float], *, title: str, colour: str = "#4c78a8", width: int = 480,
    height: int = 200, empty: str = "no data",
) -> str:
    """Vertical bars with their value on top (a distribution: few bars, each worth reading)."""
    parts = _open(width, height, title)
    left, top, right, bottom = 40.0, 16.0, 8.0, 26.0
    plot_w, plot_h = width - left - right, height - top - bottom
    if not labels or max(values, default=0) <= 0:
        return _empty(parts, width, height, empty)
    top_value = _nice_max(max(values))
    parts += _y_axis(left, top, plot_w, plot_h, top_value)
    slot = plot_w / len(labels)
    bar_w = max(slot * 0.7, 1.0)
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        x = left + slot * i + (slot - bar_w) / 2
        h = plot_h * max(value, 0.0) / top_value
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {compact(value)}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" font-size="10" text-anchor="middle" fill="{TEXT}">'
            f"{compact(value)}</text>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 10:.1f}" font-size="10" text-anchor="middle" '
            f'fill="{AXIS}">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{left:.1f}" y1="{top + plot_h:.1f}" x2="{left + plot_w:.1f}" y2="{top + plot_h:.1f}" '
        f'stroke="{AXIS}"/></svg>'
    )
    return "".join(parts)


def bars_with_line(
    labels: Sequence[str], values: Sequence[float], line: float, *, title: str, line_label: str,
    colour: str = "#4c78a8", over_colour: str = "#d1495b", width: int = 720, empty: str = "no data",
) -> str:
    """Horizontal bars (scenario labels are long) against a reference drawn as a vertical line;
    bars beyond the line take over_colour, so the scenarios the reference does not cover stand out."""
    row_h = 20.0
    # Room for the longest label at ~6.5 px a character (11 px sans-serif), within reason.
    left = min(max(60.0, 12 + 6.5 * max((len(label) for label in labels), default=0)), width / 3)
    top, right, bottom = 22.0, 64.0, 22.0
    height = int(top + bottom + row_h * max(len(labels), 3))
    parts = _open(width, height, title)
    plot_w = width - left - right
    plot_h = height - top - bottom
    if not labels:
        return _empty(parts, width, height, empty)
    top_value = _nice_max(max(max(values, default=0.0), line))
    for i in range(5):
        x = left + plot_w * i / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{top + plot_h:.1f}" stroke="{GRID}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{height - 6:.1f}" font-size="10" text-anchor="middle" fill="{AXIS}">'
            f"{compact(top_value * i / 4)}</text>"
        )
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        y = top + row_h * i
        w = plot_w * max(value, 0.0) / top_value
        fill = over_colour if value > line else colour
        parts.append(
            f'<text x="{left - 6:.1f}" y="{y + row_h / 2 + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{TEXT}">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{left:.1f}" y="{y + 3:.1f}" width="{w:.1f}" height="{row_h - 6:.1f}" fill="{fill}">'
            f"<title>{escape(label)}: {compact(value)}</title></rect>"
        )
        parts.append(
            f'<text x="{left + w + 4:.1f}" y="{y + row_h / 2 + 4:.1f}" font-size="10" fill="{TEXT}">'
            f"{compact(value)}</text>"
        )
    x = left + plot_w * line / top_value
    parts.append(
        f'<line x1="{x:.1f}" y1="{top - 6:.1f}" x2="{x:.1f}" y2="{top + plot_h:.1f}" stroke="#1f2933" '
        f'stroke-width="2" stroke-dasharray="5 3"/>'
    )
    parts.append(
        f'<text x="{x:.1f}" y="{top - 9:.1f}" font-size="10" text-anchor="middle" fill="#1f2933">'
        f"{escape(line_label)} {compact(line)}</text></svg>"
    )
    return "".join(parts)
