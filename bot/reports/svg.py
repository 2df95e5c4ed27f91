"""Inline SVG charts: bars (grouped or stacked) and a heat map, as text.

Each chart is `role="img"` labelled by its own `<title>` and `<desc>`; every
bar or cell carries a `<title>` (a tooltip on hover or long press). Colours
come from the page's stylesheet through the classes `s0`..`s7`, so the page
needs no inline style. The viewBox scales with the page width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 480, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 8, 10, 26
_MAX_X_LABELS = 6
_CELL, _HEAT_LEFT, _HEAT_TOP = 18, 40, 16

# Tick steps: counts use 1-2-5 decades; durations use steps a person reads at a glance.
COUNT_STEPS = tuple(m * 10**e for e in range(7) for m in (1, 2, 5))
DURATION_STEPS = (
    1,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
) + tuple(86400 * d for d in (1, 2, 5, 10, 20, 50, 100))


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str  # s0..s7


def count_tick(value: float) -> str:
    return f"{value:g}"


def duration_tick(seconds: float) -> str:
    """An axis duration, short: `30 s`, `15 min`, `6 h`, `2 d` (ticks are whole units)."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _ticks(peak: float, steps: Sequence[float]) -> list[float]:
    """Zero and up to four evenly spaced steps reaching at least `peak`."""
    step = next((s for s in steps if peak / s <= 4), steps[-1])
    return [step * i for i in range(max(1, math.ceil(peak / step)) + 1)]


def _open(ident: str, title: str, summary: str, height: int) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-title">{escape(title)}</title>'
        f'<desc id="{ident}-desc">{escape(summary)}</desc>'
    )


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def bar_chart(
    ident: str,
    title: str,
    summary: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool,
    steps: Sequence[float],
    show: Callable[[float], str],
    tick: Callable[[float], str],
) -> str:
    """Bars per label: side by side (`stacked=False`) or on top of each other;
    `show` formats a bar's value, `tick` an axis value."""
    width = WIDTH - _LEFT - _RIGHT
    height = HEIGHT - _TOP - _BOTTOM
    per_label = [
        [v or 0.0 for v in column] for column in zip(*(s.values for s in series), strict=True)
    ]
    peak = max((sum(c) if stacked else max(c) for c in per_label), default=0.0)
    ticks = _ticks(peak or 1.0, steps)
    scale = height / ticks[-1]
    parts = [_open(ident, title, summary, HEIGHT)]
    for value in ticks:
        y = _TOP + height - value * scale
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" '
            f'y1="{_number(y)}" y2="{_number(y)}"/>'
            f'<text class="axis" x="{_LEFT - 4}" y="{_number(y + 4)}" '
            f'text-anchor="end">{escape(tick(value))}</text>'
        )
    slot = width / max(len(labels), 1)
    bar = slot * 0.8 / (1 if stacked else max(len(series), 1))
    every = math.ceil(len(labels) / _MAX_X_LABELS) or 1
    for i, (label, column) in enumerate(zip(labels, per_label, strict=True)):
        x = _LEFT + i * slot + slot * 0.1
        base: float = _TOP + height
        for j, (one, value) in enumerate(zip(series, column, strict=True)):
            if value <= 0:
                continue
            h = value * scale
            left = x if stacked else x + j * bar
            top = base - h
            parts.append(
                f'<rect class="{one.css}" x="{_number(left)}" y="{_number(top)}" '
                f'width="{_number(bar)}" height="{_number(h)}">'
                f"<title>{escape(f'{label}, {one.name}: {show(value)}')}</title></rect>"
            )
            if stacked:
                base = top
        if i % every == 0:
            parts.append(
                f'<text class="axis" x="{_number(_LEFT + (i + 0.5) * slot)}" '
                f'y="{HEIGHT - 8}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def heat_map(
    ident: str,
    title: str,
    summary: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[int]],
    unit: str,
) -> str:
    """One cell per (row, column), darker for more; empty cells stay pale."""
    height = _HEAT_TOP + len(rows) * _CELL + 4
    peak = max((v for row in values for v in row), default=0) or 1
    parts = [_open(ident, title, summary, height)]
    for j, column in enumerate(columns):
        if j % 3 == 0:
            parts.append(
                f'<text class="axis" x="{_HEAT_LEFT + j * _CELL + _CELL / 2}" y="{_HEAT_TOP - 4}" '
                f'text-anchor="middle">{escape(column)}</text>'
            )
    for i, (row, row_values) in enumerate(zip(rows, values, strict=True)):
        y = _HEAT_TOP + i * _CELL
        parts.append(
            f'<text class="axis" x="{_HEAT_LEFT - 4}" y="{y + _CELL - 5}" '
            f'text-anchor="end">{escape(row)}</text>'
        )
        for j, (column, value) in enumerate(zip(columns, row_values, strict=True)):
            shade = (
                f'class="s0" fill-opacity="{0.15 + 0.85 * value / peak:.2f}"'
                if value
                else 'class="blank"'
            )
            parts.append(
                f"<rect {shade} "
                f'x="{_HEAT_LEFT + j * _CELL}" y="{y}" width="{_CELL - 1}" height="{_CELL - 1}">'
                f"<title>{escape(f'{row} {column}: {value} {unit}')}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)
