"""`/social-stats`, the daily summary and their windows: pure functions over storage.stats.

- Windows are local days in `TIMEZONE`: a day starts at local midnight, so a
  DST day lasts 23 or 25 hours. A midnight that does not exist (a zone that
  springs forward at 00:00) is read with the offset before the change (PEP 495
  `fold=0`), which is exactly the instant the day begins.
- `today` runs from local midnight to now; `7d` and `30d` are the last 7 or 30
  local days including today (so far); `yesterday` is the whole previous day.
- Every figure comes from `storage.stats.compute`, so the command, the summary
  and `/api/stats` agree; `bot.blocks.stats` only formats them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.blocks.conversation import escape
from bot.routing import TAG_RULE, is_tag
from bot.services.refusal import Refusal
from storage.db import Database
from storage.models import Moment
from storage.moments import MomentStore
from storage.stats import UNASSIGNED, compute, oldest_unanswered

PERIODS = ("today", "yesterday", "7d", "30d")
_PERIOD_TITLES = {
    "today": "today so far",
    "yesterday": "yesterday",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
}
OLDEST_LIMIT = 5
MOMENTS_LIMIT = 3  # the latest moments listed
TAG_PREFIX = "tag:"


@dataclass(frozen=True)
class Window:
    since: datetime  # UTC, inclusive
    until: datetime  # UTC, exclusive
    title: str
    live: bool = False  # runs until now: its unanswered figures are "now"


@dataclass(frozen=True)
class StatsRequest:
    period: str
    window: Window
    network: str | None = None
    team: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class StatsReport:
    window: Window
    figures: dict[str, Any]
    oldest: list[dict[str, Any]]
    as_of: datetime
    network: str | None = None
    team: str | None = None
    moments: Sequence[Moment] = ()  # the latest few of the window
    tag: str | None = None


@dataclass(frozen=True)
class SummaryReport:
    day: date
    figures: dict[str, Any]
    previous: dict[str, Any]
    oldest: list[dict[str, Any]]  # waiting when the summary is made
    as_of: datetime
    moments: Sequence[Moment] = ()  # the day's latest few


# -- windows -----------------------------------------------------------------
def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant local `day` begins in `tz`."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_window(day: date, tz: ZoneInfo) -> Window:
    """One whole local day: 23, 24 or 25 hours."""
    return Window(
        local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz), day.isoformat()
    )


def period_window(period: str, now: datetime, tz: ZoneInfo) -> Window:
    today = now.astimezone(tz).date()
    title = _PERIOD_TITLES[period]
    if period == "yesterday":
        return Window(
            local_midnight(today - timedelta(days=1), tz), local_midnight(today, tz), title
        )
    days = {"today": 1, "7d": 7, "30d": 30}[period]
    return Window(
        local_midnight(today - timedelta(days=days - 1), tz), now.astimezone(UTC), title, True
    )


def parse_stats_command(
    text: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    networks: Sequence[str],
    teams: Sequence[str],
) -> StatsRequest:
    """`[today|yesterday|7d|30d] [network] [team] [tag:NAME]` in any order,
    case-insensitive (`tag:` only the conversations routing rules gave that tag).

    A word that names both a network and a team is read as the network.
    Refuses with a sentence for the user (safe to show in mrkdwn).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    known_networks = {name.lower() for name in networks}
    known_teams = {name.lower() for name in teams} | {UNASSIGNED}
    chosen: dict[str, str] = {}
    for word in text.lower().split():
        if word.startswith(TAG_PREFIX) and len(word) > len(TAG_PREFIX):
            kind = "tag"
            if not is_tag(word.removeprefix(TAG_PREFIX)):
                raise Refusal(f"`{escape(word)}` is no tag: a tag is {TAG_RULE}.")
        elif word in PERIODS:
            kind = "period"
        elif word in known_networks:
            kind = "network"
        elif word in known_teams:
            kind = "team"
        else:
            raise Refusal(
                f"I don't know `{escape(word)}`. "
                + _usage(sorted(known_networks), sorted(known_teams))
            )
        if kind in chosen:
            raise Refusal(
                f"Give at most one {kind} (got `{escape(chosen[kind])}` and "
                f"`{escape(word)}`). " + _usage(sorted(known_networks), sorted(known_teams))
            )
        chosen[kind] = word
    period = chosen.get("period", "today")
    return StatsRequest(
        period=period,
        window=period_window(period, now, tz),
        network=chosen.get("network"),
        team=chosen.get("team"),
        tag=chosen["tag"].removeprefix(TAG_PREFIX) if "tag" in chosen else None,
    )


def _usage(networks: Sequence[str], teams: Sequence[str]) -> str:
    return (
        "Usage: `/social-stats [today|yesterday|7d|30d] [network] [team] [tag:NAME]`, "
        "in any order. "
        f"Networks: {', '.join(networks) or 'none configured'}. Teams: {', '.join(teams)}."
    )


# -- reading -----------------------------------------------------------------
async def stats_report(db: Database, request: StatsRequest, now: datetime) -> StatsReport:
    """What `/social-stats` shows: the figures and the oldest waits as of the window's end."""
    window = request.window
    as_of = min(window.until, now)
    scope = {"network": request.network, "team": request.team, "tag": request.tag}
    figures, oldest, moments = await asyncio.gather(
        compute(db, window.since, window.until, now=now, **scope),
        oldest_unanswered(db, as_of, OLDEST_LIMIT, **scope),
        MomentStore(db).between(window.since, window.until, MOMENTS_LIMIT, **scope),
    )
    return StatsReport(window, figures, oldest, as_of, moments=moments, **scope)


async def summary_report(db: Database, day: date, tz: ZoneInfo, now: datetime) -> SummaryReport:
    """The daily summary of local `day`, the day before for comparison, and who waits now."""
    current = day_window(day, tz)
    before = day_window(day - timedelta(days=1), tz)
    figures, previous, oldest, moments = await asyncio.gather(
        compute(db, current.since, current.until, now=now),
        compute(db, before.since, before.until, now=now),
        oldest_unanswered(db, now, OLDEST_LIMIT),
        MomentStore(db).between(current.since, current.until, MOMENTS_LIMIT),
    )
    return SummaryReport(day, figures, previous, oldest, now, moments)


async def window_figures(
    db: Database,
    since: datetime,
    until: datetime,
    *,
    network: str | None,
    team: str | None,
    now: datetime,
    tag: str | None = None,
) -> dict[str, Any]:
    """The `/api/stats` figures of a window (the contract's definitions, in SQL)."""
    return await compute(db, since, until, network=network, team=team, now=now, tag=tag)
