"""`/social-stats` and the daily summary as Block Kit: formatting only, no I/O.

Every figure comes from `bot.services.stats` (over `storage.stats.compute`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bot.blocks.conversation import escape
from bot.blocks.moments import moments_block
from bot.services.stats import StatsReport, SummaryReport, local_midnight

_MAX_SPLIT_LINES = 20  # keeps a section far below Block Kit's 3000 characters

Figures = Mapping[str, Any]


def humanize_seconds(seconds: float) -> str:
    """`45 s`, `4 min`, `2 h 05 min`, `3 d 4 h` (truncated, never rounded up)."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes:02d} min"
    days, rest = divmod(whole, 86400)
    return f"{days} d {rest // 3600} h"


def _duration(seconds: float | None) -> str:
    return "–" if seconds is None else humanize_seconds(seconds)


def _rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def thread_link(channel: str, thread_ts: str, permalink_base: str | None = None) -> str:
    """A link to a thread: `<base>/<channel>/p<ts digits>` or Slack's app_redirect."""
    if permalink_base:
        return f"{permalink_base.rstrip('/')}/{channel}/p{thread_ts.replace('.', '')}"
    return (
        "https://slack.com/app_redirect?"
        f"channel={quote(channel, safe='')}&message_ts={quote(thread_ts, safe='')}"
    )


def _oldest_lines(oldest: Sequence[Mapping[str, Any]], permalink_base: str | None) -> list[str]:
    lines = []
    for item in oldest:
        label = escape(
            f"#{item['conversation_id']} {item.get('customer_name') or ''}".strip()
        ).replace("|", "¦")
        if item.get("channel") and item.get("thread_ts"):
            label = f"<{thread_link(item['channel'], item['thread_ts'], permalink_base)}|{label}>"
        where = escape(f"{item['network']}, {item['team']}")
        lines.append(f"• {label} ({where}): waiting {_duration(item['waiting_seconds'])}")
    return lines


def _figure_fields(
    figures: Figures, previous: Figures | None = None, business_hours: bool = False
) -> list[dict[str, str]]:
    """`business_hours`: BUSINESS_HOURS is set; the average counted in open time is
    shown beside the wall-clock one."""

    def field(title: str, value: str, change: str = "") -> dict[str, str]:
        return {"type": "mrkdwn", "text": f"*{title}*\n{value}{change}"}

    def delta(key: str, kind: str) -> str:
        if previous is None:
            return ""
        return _change(figures.get(key), previous.get(key), kind)

    answered = f"{figures['answered_turns']} of {figures['turns']} turns"
    fields = [
        field("Received", f"{figures['received']} messages", delta("received", "count")),
        field("Conversations", str(figures["conversations"]), delta("conversations", "count")),
        field(
            "Response rate",
            f"{_rate(figures['response_rate'])} ({answered})",
            delta("response_rate", "rate"),
        ),
        field(
            "Average response",
            _duration(figures["avg_response_seconds"])
            + (
                f" ({_duration(figures['avg_business_response_seconds'])} in business hours)"
                if business_hours
                else ""
            ),
            delta("avg_response_seconds", "seconds"),
        ),
        field(
            "Median / p90",
            f"{_duration(figures['median_response_seconds'])} / "
            f"{_duration(figures['p90_response_seconds'])}",
            delta("median_response_seconds", "seconds"),
        ),
        field(
            "Average first response",
            _duration(figures["avg_first_response_seconds"]),
            delta("avg_first_response_seconds", "seconds"),
        ),
    ]
    if figures.get("csat_count"):
        fields.append(field("Customer rating", _csat(figures)))
    return fields


def _csat(figures: Figures) -> str:
    """`4.2 / 5 (12 ratings)`: shown only where there are ratings."""
    count = figures["csat_count"]
    return f"{figures['csat_avg']:.1f} / 5 ({count} rating{'' if count == 1 else 's'})"


def _change(current: Any, previous: Any, kind: str) -> str:
    """` ▲ 12`, ` ▼ 3 pts`, ` ▲ 4 min` against the day before; nothing when unknown."""
    if current is None or previous is None:
        return ""
    difference = current - previous
    if kind == "rate":
        points = round(difference * 100)
        amount = f"{abs(points)} pts"
        sign = points
    elif kind == "seconds":
        amount = humanize_seconds(abs(difference))
        sign = int(difference)
    else:
        amount = str(abs(difference))
        sign = difference
    if sign == 0:
        return "  (= the day before)"
    return f"  {'▲' if sign > 0 else '▼'} {amount}"


def _split_lines(figures: Figures, key: str) -> list[str]:
    lines = []
    for name, part in list(figures.get(key, {}).items())[:_MAX_SPLIT_LINES]:
        lines.append(
            f"*{escape(name)}*: {part['received']} received · "
            f"{_rate(part['response_rate'])} answered · "
            f"median {_duration(part['median_response_seconds'])} · "
            f"p90 {_duration(part['p90_response_seconds'])} · "
            f"{part['unanswered']} waiting"
            + (f" · rated {_csat(part)}" if part.get("csat_count") else "")
        )
    return lines


def _unanswered_block(
    count: int,
    oldest_seconds: float | None,
    oldest: Sequence[Mapping[str, Any]],
    heading: str,
    permalink_base: str | None,
) -> dict[str, Any]:
    text = f"*{heading}*: {count}"
    if oldest_seconds is not None:
        text += f", the oldest waiting {humanize_seconds(oldest_seconds)}"
    lines = _oldest_lines(oldest, permalink_base)
    if lines:
        text += "\n" + "\n".join(lines)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _split_blocks(figures: Figures) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for key, title in (("by_network", "By network"), ("by_team", "By team")):
        lines = _split_lines(figures, key)
        if lines:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{title}*\n" + "\n".join(lines)},
                }
            )
    return blocks


def _local(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def stats_blocks(
    report: StatsReport,
    tz: ZoneInfo,
    *,
    permalink_base: str | None = None,
    report_url: str | None = None,
    business_hours: bool = False,
) -> list[dict[str, Any]]:
    """The ephemeral `/social-stats` answer; `report_url` links to the charts;
    `business_hours`: show the response time counted in business hours too."""
    figures = report.figures
    scope = " · ".join(
        f"{label}: {escape(value)}"
        for label, value in (
            ("network", report.network),
            ("team", report.team),
            ("tag", report.tag),
        )
        if value
    )
    context = f"{_local(report.window.since, tz)} → {_local(report.window.until, tz)}"
    if scope:
        context += f" · {scope}"
    waiting_heading = (
        "Unanswered now" if report.window.live else f"Unanswered at {_local(report.as_of, tz)}"
    )
    return [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Social stats: {report.window.title}"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        {"type": "section", "fields": _figure_fields(figures, business_hours=business_hours)},
        _unanswered_block(
            figures["unanswered"],
            figures["oldest_unanswered_seconds"],
            report.oldest,
            waiting_heading,
            permalink_base,
        ),
        *moments_block(figures.get("moments", 0), report.moments),
        {"type": "divider"},
        *_split_blocks(figures),
        *(_report_link_block(report_url) if report_url else []),
    ]


def _report_link_block(url: str) -> list[dict[str, Any]]:
    text = f"<{url}|Open the charts for this window> (the link works for 24 hours)"
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}]


def summary_blocks(
    report: SummaryReport,
    tz: ZoneInfo,
    *,
    permalink_base: str | None = None,
    business_hours: bool = False,
    rate_target: float | None = None,
) -> list[dict[str, Any]]:
    """The daily summary post: the day's figures, the change against the day before,
    how many were left unanswered at midnight, and who is waiting now; with
    `rate_target` (RESPONSE_RATE_TARGET), each network's response rate against it."""
    figures = report.figures
    waiting_now = _oldest_lines(report.oldest, permalink_base)
    now_text = "*Waiting now*: " + (
        "nobody :tada:" if not waiting_now else "the oldest\n" + "\n".join(waiting_now)
    )
    end_of_day = f"*Unanswered at the end of the day*: {figures['unanswered']}"
    if figures["oldest_unanswered_seconds"] is not None:
        end_of_day += (
            f", the oldest waiting {humanize_seconds(figures['oldest_unanswered_seconds'])}"
        )
    end_of_day += _change(figures["unanswered"], report.previous["unanswered"], "count")
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"Daily summary: {report.day.strftime('%A %d %B %Y')}",
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{_local(local_midnight(report.day, tz), tz)} → "
                    f"{_local(local_midnight(report.day + timedelta(days=1), tz), tz)}"
                    " · ▲▼ against the day before",
                }
            ],
        },
        {"type": "section", "fields": _figure_fields(figures, report.previous, business_hours)},
        {"type": "section", "text": {"type": "mrkdwn", "text": end_of_day}},
        {"type": "section", "text": {"type": "mrkdwn", "text": now_text}},
        *moments_block(figures.get("moments", 0), report.moments),
        {"type": "divider"},
        *_split_blocks(figures),
        *(_target_blocks(figures, rate_target) if rate_target is not None else []),
    ]


def _target_blocks(figures: Figures, target: float) -> list[dict[str, Any]]:
    """Each network's response rate against RESPONSE_RATE_TARGET: met or missed."""
    lines = []
    for name, part in list(figures.get("by_network", {}).items())[:_MAX_SPLIT_LINES]:
        rate = part["response_rate"]
        mark = (
            ":grey_question:"
            if rate is None
            else (":white_check_mark:" if rate >= target else ":x:")
        )
        lines.append(f"{mark} *{escape(name)}*: {_rate(rate)}")
    if not lines:
        return []
    heading = f"*Response rate against the target of {target:.0%}*"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": heading + "\n" + "\n".join(lines)}}
    ]


def escalations_sent(count: int) -> dict[str, Any]:
    """The summary's last line: how many pages went out that day."""
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"Escalations sent that day: {count}"}],
    }
