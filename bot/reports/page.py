"""The `/reports` HTML page: one self-contained document, no script, no font or
file from elsewhere (the handler's Content-Security-Policy allows only the
stylesheet below, by its hash).

The page is `SECTIONS` in order, each a function of the `Report` returning
HTML, or "" to leave itself out. Ratings (CSAT) and moments are each one more
entry here, with its query in `storage/reports.py` and its field on `Report`,
once their tables exist; until then the page has no such section.

Every chart is followed by a `<details>` table with the same numbers, for
screen readers and for anyone who wants the exact figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from html import escape
from typing import Any

from bot.blocks.stats import humanize_seconds
from bot.reports.svg import (
    COUNT_STEPS,
    DURATION_STEPS,
    Series,
    bar_chart,
    count_tick,
    duration_tick,
    heat_map,
)
from bot.services.reports import Report, ReportFilters
from bot.services.stats import PERIODS
from storage.stats import UNASSIGNED

Href = Callable[[ReportFilters], str]
NO_DATA = '<p class="empty">No data for this window.</p>'
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PRESET_NAMES = {"today": "Today", "yesterday": "Yesterday", "7d": "7 days", "30d": "30 days"}
_SERIES_CLASSES = 8
_CURRENT = ' aria-current="page"'
_WIDE = ' class="wide"'

STYLESHEET = """
:root{color-scheme:light;--ink:#1f2937;--muted:#4b5563;--line:#d1d5db;--bg:#fff;--soft:#f3f4f6}
*{box-sizing:border-box}
body{margin:0 auto;max-width:68rem;padding:1rem;font:16px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
h1{font-size:1.5rem;margin:.25rem 0}h2{font-size:1.15rem;margin:0 0 .5rem}
p.context{color:var(--muted);margin:.25rem 0 1rem}
nav{display:flex;flex-wrap:wrap;gap:.4rem 1rem;margin-bottom:1rem}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.3rem}
nav a{display:inline-block;padding:.3rem .7rem;border:1px solid var(--line);border-radius:1rem;
color:var(--ink);text-decoration:none}
nav a[aria-current]{background:var(--ink);color:var(--bg);border-color:var(--ink)}
dl.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.5rem;
margin:0 0 1rem}
dl.figures div{background:var(--soft);border-radius:.5rem;padding:.5rem .75rem}
dl.figures dt{font-size:.85rem;color:var(--muted)}
dl.figures dd{margin:0;font-size:1.3rem;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr));gap:1rem}
section{border:1px solid var(--line);border-radius:.5rem;padding:.75rem;margin-bottom:1rem;
min-width:0}
svg{display:block;width:100%;height:auto}
.axis{font-size:11px;fill:var(--muted)}.grid{stroke:var(--line);stroke-width:1}
.blank{fill:var(--soft)}
.s0{fill:#0072b2;background:#0072b2}.s1{fill:#e69f00;background:#e69f00}
.s2{fill:#009e73;background:#009e73}.s3{fill:#cc79a7;background:#cc79a7}
.s4{fill:#56b4e9;background:#56b4e9}.s5{fill:#d55e00;background:#d55e00}
.s6{fill:#999933;background:#999933}.s7{fill:#000;background:#000}
ul.legend{list-style:none;padding:0;margin:.25rem 0;display:flex;flex-wrap:wrap;gap:.75rem;
font-size:.9rem}
ul.legend span{display:inline-block;width:.8rem;height:.8rem;border-radius:.15rem;
margin-right:.3rem;vertical-align:-.05rem}
details{margin-top:.5rem}summary{cursor:pointer;color:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
caption{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.wide{grid-column:1/-1}
@media (max-width:40rem){body{padding:.5rem}.axis{font-size:16px}}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:right;
white-space:nowrap}
th:first-child,td:first-child{text-align:left}
p.empty{color:var(--muted);font-style:italic}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLESHEET.encode()).digest()).decode()


def _duration(seconds: float | None) -> str:
    return "–" if seconds is None else humanize_seconds(seconds)


def _rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def _day(day: date) -> str:
    return day.strftime("%d %b")


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table with `rows` of already escaped cells; the first cell is a row header."""
    header = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join(
        f'<tr><th scope="row">{row[0]}</th>{"".join(f"<td>{c}</td>" for c in row[1:])}</tr>'
        for row in rows
    )
    return (
        f'<div class="scroll"><table><caption>{escape(caption)}</caption>'
        f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _chart(ident: str, heading: str, chart: str, legend: str, table: str) -> str:
    details = f"<details><summary>Table: {escape(heading.lower())}</summary>{table}</details>"
    return _section(ident, heading, chart + legend + details)


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<li><span class="{s.css}" aria-hidden="true"></span>{escape(s.name)}</li>' for s in series
    )
    return f'<ul class="legend" aria-label="Legend">{items}</ul>'


def _section(ident: str, heading: str, body: str, *, wide: bool = False) -> str:
    return (
        f'<section aria-labelledby="{ident}-h"{_WIDE if wide else ""}>'
        f'<h2 id="{ident}-h">{escape(heading)}</h2>'
        f"{body}</section>"
    )


def _empty(ident: str, heading: str) -> str:
    return _section(ident, heading, NO_DATA)


# -- sections ------------------------------------------------------------------
_FIGURES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("received", "Messages received", str),
    ("conversations", "Conversations", str),
    ("turns", "Turns", str),
    ("answered_turns", "Answered turns", str),
    ("response_rate", "Response rate", _rate),
    ("avg_response_seconds", "Average response", _duration),
    ("median_response_seconds", "Median response", _duration),
    ("p90_response_seconds", "p90 response", _duration),
    ("avg_first_response_seconds", "Average first response", _duration),
    ("unanswered", "Unanswered", str),
    ("oldest_unanswered_seconds", "Oldest wait", _duration),
)


# Shown in the headline only when the window has ratings (CSAT_ENABLED).
_CSAT_FIGURES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("csat_count", "Customer ratings", str),
    ("csat_avg", "Average rating", lambda avg: "—" if avg is None else f"{avg:.1f} / 5"),
)


def headline(report: Report) -> str:
    """The `/api/stats` figures; `data-value` holds each exact JSON value."""
    shown = _FIGURES + (_CSAT_FIGURES if report.figures.get("csat_count") else ())
    items = "".join(
        f'<div><dt>{escape(label)}</dt><dd data-figure="{key}" '
        f'data-value="{escape(json.dumps(report.figures[key]))}">'
        f"{escape(show(report.figures[key]))}</dd></div>"
        for key, label, show in shown
    )
    return _section("figures", "Figures", f'<dl class="figures">{items}</dl>')


def response_times(report: Report) -> str:
    heading = "Response time per day"
    if not any(day.answered for day in report.responses):
        return _empty("response", heading)
    labels = [_day(day.day) for day in report.responses]
    series = [
        Series("Median", [day.median for day in report.responses], "s0"),
        Series("p90", [day.p90 for day in report.responses], "s1"),
    ]
    chart = bar_chart(
        "response",
        heading,
        "Median and 90th percentile response time of the turns started each day.",
        labels,
        series,
        stacked=False,
        steps=DURATION_STEPS,
        show=humanize_seconds,
        tick=duration_tick,
    )
    rows = [
        [escape(label), str(day.answered), _duration(day.median), _duration(day.p90)]
        for label, day in zip(labels, report.responses, strict=True)
    ]
    table = _table(heading, ["Day", "Answered turns", "Median", "p90"], rows)
    return _chart("response", heading, chart, _legend(series), table)


def volume(report: Report) -> str:
    heading = "Messages per network per day"
    if not report.volume:
        return _empty("volume", heading)
    labels = [_day(day) for day in report.days]
    series = [
        Series(network, counts, f"s{i % _SERIES_CLASSES}")
        for i, (network, counts) in enumerate(report.volume.items())
    ]
    chart = bar_chart(
        "volume",
        heading,
        "Customer messages received each day, stacked by network.",
        labels,
        series,
        stacked=True,
        steps=COUNT_STEPS,
        show=count_tick,
        tick=count_tick,
    )
    names = list(report.volume)
    rows = [
        [escape(label), *(str(report.volume[n][i]) for n in names)]
        for i, label in enumerate(labels)
    ]
    table = _table(heading, ["Day", *names], rows)
    return _chart("volume", heading, chart, _legend(series), table)


def weekly_pattern(report: Report) -> str:
    heading = "Messages by weekday and hour"
    if not any(any(row) for row in report.heat):
        return _empty("heat", heading)
    hours = [f"{hour:02d}" for hour in range(24)]
    zone = str(report.tz)
    chart = heat_map(
        "heat",
        heading,
        f"Customer messages by local weekday and hour ({zone}); darker is more.",
        WEEKDAYS,
        hours,
        report.heat,
        "messages",
    )
    rows = [
        [day, *(str(v) for v in values)] for day, values in zip(WEEKDAYS, report.heat, strict=True)
    ]
    table = _table(f"{heading} ({zone})", ["Day", *hours], rows)
    return _chart("heat", heading, chart, "", table)


def waiting(report: Report) -> str:
    heading = "Unanswered conversations by age"
    if not report.aged:
        return _empty("ages", heading)
    labels = [label for label, _ in report.ages]
    series = [Series("Waiting", [count for _, count in report.ages], "s5")]
    total = report.figures["unanswered"]
    listed = f" (the oldest {report.aged} of {total})" if report.aged < total else ""
    chart = bar_chart(
        "ages",
        heading,
        f"How long the unanswered conversations have waited{listed}.",
        labels,
        series,
        stacked=True,
        steps=COUNT_STEPS,
        show=count_tick,
        tick=count_tick,
    )
    rows = [[escape(label), str(count)] for label, count in report.ages]
    table = _table(heading + listed, ["Waiting", "Conversations"], rows)
    return _chart("ages", heading, chart, "", table)


_SPLIT_HEAD = (
    "Received",
    "Conversations",
    "Turns",
    "Answered",
    "Rate",
    "Average",
    "Median",
    "p90",
    "Average first",
    "Unanswered",
    "Oldest wait",
)


def _split(ident: str, heading: str, first: str, parts: dict[str, dict[str, Any]]) -> str:
    if not parts:
        return _empty(ident, heading)
    rows = [
        [escape(name), *(escape(show(figures[key])) for key, _, show in _FIGURES)]
        for name, figures in parts.items()
    ]
    table = _table(heading, [first, *_SPLIT_HEAD], rows)
    return (
        f'<section aria-labelledby="{ident}-h"><h2 id="{ident}-h">{heading}</h2>{table}</section>'
    )


def networks(report: Report) -> str:
    return _split("networks", "Networks", "Network", report.figures["by_network"])


def teams(report: Report) -> str:
    return _split("teams", "Teams", "Team", report.figures["by_team"])


def agents(report: Report) -> str:
    heading = "Agents"
    if not report.agents:
        return _empty("agents", heading)
    rows = [
        [
            escape(agent.name or agent.user_id),
            str(agent.replies),
            str(agent.answered_turns),
            _duration(agent.median_response_seconds),
        ]
        for agent in report.agents
    ]
    table = _table(
        "Agents: the people whose replies answered the turns",
        ["Agent", "Replies", "Answered turns", "Median response"],
        rows,
    )
    return _section("agents", heading, table, wide=True)


SECTIONS: tuple[Callable[[Report], str], ...] = (
    response_times,
    volume,
    weekly_pattern,
    waiting,
    networks,
    teams,
    agents,
)


# -- the document ----------------------------------------------------------------
def _nav(report: Report, href: Href, networks: Sequence[str], teams: Sequence[str]) -> str:
    current = report.filters

    def group(label: str, links: Sequence[tuple[str, ReportFilters]]) -> str:
        items = "".join(
            f'<li><a href="{escape(href(target))}"{_CURRENT if target == current else ""}>'
            f"{escape(text)}</a></li>"
            for text, target in links
        )
        return f'<ul aria-label="{escape(label)}">{items}</ul>'

    windows = [
        (_PRESET_NAMES[p], replace(current, period=p, since=None, until=None)) for p in PERIODS
    ]
    by_network = [("All networks", replace(current, network=None))] + [
        (name, replace(current, network=name)) for name in networks
    ]
    by_team = [("All teams", replace(current, team=None))] + [
        (name, replace(current, team=name)) for name in [*teams, UNASSIGNED]
    ]
    return (
        '<nav aria-label="Filters">'
        + group("Window", windows)
        + group("Network", by_network)
        + group("Team", by_team)
        + "</nav>"
    )


def _context(report: Report) -> str:
    fmt = "%Y-%m-%d %H:%M"
    window = report.window
    text = (
        f"{window.since.astimezone(report.tz).strftime(fmt)} to "
        f"{window.until.astimezone(report.tz).strftime(fmt)} ({report.tz})"
    )
    scope = [
        f"{k}: {v}"
        for k, v in (("network", report.filters.network), ("team", report.filters.team))
        if v
    ]
    if scope:
        text += " · " + ", ".join(scope)
    text += f" · unanswered as of {report.as_of.astimezone(report.tz).strftime(fmt)}"
    return (
        f'<p class="context" data-since="{window.since.isoformat()}" '
        f'data-until="{window.until.isoformat()}">{escape(text)}</p>'
    )


def render(report: Report, href: Href, *, networks: Sequence[str], teams: Sequence[str]) -> str:
    """The whole page. `href` makes the link of another filter choice (signed or not)."""
    title = f"Relaydesk reports: {report.window.title}"
    charts = "".join(section(report) for section in SECTIONS)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{STYLESHEET}</style></head>"
        f"<body><header><h1>{escape(title)}</h1>{_context(report)}"
        f"{_nav(report, href, networks, teams)}</header>"
        f'<main>{headline(report)}<div class="charts">{charts}</div></main></body></html>'
    )
