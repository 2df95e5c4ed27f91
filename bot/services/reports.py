"""What the `/reports` page shows: filters, window, and the figures behind each chart.

The headline figures, the network and team tables and the unanswered count
are `storage.stats.compute`, the very call behind `/api/stats`, so the page
and the API cannot disagree. The charts regroup `storage.reports`' quarter-hour
series into local days, weekdays and hours of `TIMEZONE`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.services.refusal import Refusal
from bot.services.stats import PERIODS, Window, local_midnight, period_window
from storage.db import Database
from storage.reports import Agent, series
from storage.stats import compute, oldest_unanswered, percentile_cont

DEFAULT_PERIOD = "7d"
# Waits longer than each bound (seconds), with the label of the band below it.
AGE_BANDS: tuple[tuple[float, str], ...] = (
    (3600, "under 1 h"),
    (4 * 3600, "1–4 h"),
    (86400, "4–24 h"),
    (3 * 86400, "1–3 days"),
    (7 * 86400, "3–7 days"),
    (float("inf"), "over 7 days"),
)
AGE_LIMIT = 10_000  # the age chart lists at most this many waiting conversations


@dataclass(frozen=True)
class ReportFilters:
    """A preset `period`, or `since`/`until`; optionally one network and one team."""

    period: str | None = DEFAULT_PERIOD
    since: datetime | None = None
    until: datetime | None = None
    network: str | None = None
    team: str | None = None

    def params(self) -> dict[str, str]:
        """The query parameters that ask for these filters (empty ones left out)."""
        values = {
            "period": self.period,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "network": self.network,
            "team": self.team,
        }
        return {name: value for name, value in values.items() if value}

    def window(self, now: datetime, tz: ZoneInfo) -> Window:
        if self.period is not None:
            return period_window(self.period, now, tz)
        assert self.since is not None
        until = self.until or now
        title = f"{_local(self.since, tz)} to {_local(until, tz)}"
        return Window(self.since, until, title, live=until >= now)


def parse_filters(query: Mapping[str, str], tz: ZoneInfo) -> ReportFilters:
    """`period=today|yesterday|7d|30d`, or `since=` (and optionally `until=`): an
    ISO-8601 time with its offset, or a date (local; `until` includes that day).

    Refuses with a sentence for the reader.
    """
    network = query.get("network", "").lower() or None
    team = query.get("team", "").lower() or None
    since_text, until_text = query.get("since", ""), query.get("until", "")
    if not since_text:
        if until_text:
            raise Refusal("until needs since")
        period = query.get("period") or DEFAULT_PERIOD
        if period not in PERIODS:
            raise Refusal(f"period must be one of {', '.join(PERIODS)}")
        return ReportFilters(period, network=network, team=team)
    if query.get("period"):
        raise Refusal("give either period or since/until, not both")
    since = _instant(since_text, tz, "since", end_of_day=False)
    until = _instant(until_text, tz, "until", end_of_day=True) if until_text else None
    if until is not None and until < since:
        raise Refusal("until must not be before since")
    return ReportFilters(None, since, until, network, team)


# The times a window may name: beyond them date arithmetic overflows, and nothing is stored.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _instant(text: str, tz: ZoneInfo, name: str, *, end_of_day: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if not EARLIEST.date() < day < LATEST.date():
            raise Refusal(f"{name} must be between {EARLIEST:%Y} and {LATEST:%Y}")
        return local_midnight(day + timedelta(days=1) if end_of_day else day, tz)
    return parse_instant(text, name)


def parse_instant(text: str, name: str) -> datetime:
    """An ISO-8601 time with its offset, in UTC, between EARLIEST and LATEST.

    Refuses with a sentence for the reader.
    """
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(f"{name} must be a date (YYYY-MM-DD) or an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise Refusal(f"{name} must include a UTC offset, e.g. 2026-11-01T00:00:00Z")
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        instant = EARLIEST - timedelta(days=1)
    if not EARLIEST <= instant <= LATEST:
        raise Refusal(f"{name} must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return instant


def _local(instant: datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class DayResponse:
    day: date
    answered: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class Report:
    filters: ReportFilters
    window: Window
    as_of: datetime
    tz: ZoneInfo
    figures: dict[str, Any]  # exactly what /api/stats returns for this window
    days: list[date]
    responses: list[DayResponse]  # one per day
    volume: dict[str, list[int]]  # network -> messages per day, aligned with `days`
    heat: list[list[int]]  # [weekday Monday=0][local hour] -> messages
    ages: list[tuple[str, int]]  # (band label, waiting conversations)
    agents: list[Agent]

    @property
    def aged(self) -> int:
        """How many waiting conversations the age chart shows (at most AGE_LIMIT)."""
        return sum(count for _, count in self.ages)


def local_days(window: Window, tz: ZoneInfo) -> list[date]:
    """The local days the window touches, in order."""
    day = window.since.astimezone(tz).date()
    days = []
    while local_midnight(day, tz) < window.until:
        days.append(day)
        day += timedelta(days=1)
    return days


async def build_report(db: Database, filters: ReportFilters, now: datetime, tz: ZoneInfo) -> Report:
    window = filters.window(now, tz)
    as_of = min(window.until, now)
    scope = {"network": filters.network, "team": filters.team}
    figures, (volume, responses, agents), waiting = await asyncio.gather(
        compute(db, window.since, window.until, now=now, **scope),
        series(db, window.since, window.until, as_of, **scope),
        oldest_unanswered(db, as_of, AGE_LIMIT, **scope),
    )
    days = local_days(window, tz)
    index = {day: i for i, day in enumerate(days)}
    per_network: dict[str, list[int]] = {}
    heat = [[0] * 24 for _ in range(7)]
    for bucket in volume:
        local = bucket.start.astimezone(tz)
        per_network.setdefault(bucket.network, [0] * len(days))[index[local.date()]] += (
            bucket.messages
        )
        heat[local.weekday()][local.hour] += bucket.messages
    times: dict[date, list[float]] = {day: [] for day in days}
    for bucket in responses:
        times[bucket.start.astimezone(tz).date()].extend(bucket.seconds)
    return Report(
        filters=filters,
        window=window,
        as_of=as_of,
        tz=tz,
        figures=figures,
        days=days,
        responses=[_day_response(day, sorted(times[day])) for day in days],
        volume=dict(sorted(per_network.items())),
        heat=heat,
        ages=_age_bands([item["waiting_seconds"] for item in waiting]),
        agents=agents,
    )


def _day_response(day: date, values: list[float]) -> DayResponse:
    return DayResponse(day, len(values), percentile_cont(values, 0.5), percentile_cont(values, 0.9))


def _age_bands(waits: list[float]) -> list[tuple[str, int]]:
    counts = [0] * len(AGE_BANDS)
    for wait in waits:
        counts[next(i for i, (bound, _) in enumerate(AGE_BANDS) if wait < bound)] += 1
    return [(label, count) for (_, label), count in zip(AGE_BANDS, counts, strict=True)]
