"""Business-hours arithmetic: pure functions over a weekly schedule, no I/O.

In storage because a turn's business-hours response time is computed where the turn
is answered; the bot reads the same schedule for the SLA clock and the out-of-hours
message.

Rules:
- A schedule is weekly spans of local wall-clock time in one IANA zone, e.g.
  ``mon-fri 09:00-18:00; sat 10:00-14:00``. A span whose end is not after its start
  runs overnight into the next day (``fri 22:00-02:00`` closes 02:00 on Saturday);
  ``24:00`` ends at midnight.
- A holiday is closed for its whole local date, including the part of an overnight
  span that reaches into it.
- DST (PEP 495 ``fold=0``, as the rotation): a local time in the spring-forward gap
  is read with the offset before the change (02:30 on that day is 03:30 after it); a
  time that occurs twice is its first occurrence. So open time is measured in real
  (UTC) seconds: ``02:00-04:00`` on a spring-forward night is one hour long.
- No spans means open around the clock (except holidays).

Every datetime taken must be timezone-aware; every datetime returned is in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAY_MINUTES = 24 * 60
_SEARCH_DAYS = 7  # days generated per step when walking forward


@dataclass(frozen=True)
class Span:
    """Open from ``start`` to ``end`` minutes after local midnight of ``weekday``.

    ``end`` may exceed a day's minutes: the span then runs into the next day."""

    weekday: int  # 0 = Monday
    start: int
    end: int


@dataclass(frozen=True)
class BusinessHours:
    spans: tuple[Span, ...]
    holidays: frozenset[date]
    tz: ZoneInfo

    @property
    def always_open(self) -> bool:
        return not self.spans and not self.holidays

    # -- the four questions --------------------------------------------------------
    def is_open(self, at: datetime) -> bool:
        at = _utc(at)
        return any(start <= at < end for start, end in self._intervals(at, at))

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself when open, else the instant the desk opens next."""
        at = _utc(at)
        for start, end in self._forward(at):
            if end > at:
                return max(start, at)
        raise AssertionError("unreachable: _forward never ends")

    def open_time(self, since: datetime, until: datetime) -> timedelta:
        """Open time between two instants (zero when ``until`` is not after ``since``)."""
        since, until = _utc(since), _utc(until)
        if until <= since:
            return timedelta(0)
        if self.always_open:
            return until - since
        return sum(
            (min(end, until) - max(start, since) for start, end in self._intervals(since, until)),
            timedelta(0),
        )

    def add(self, at: datetime, amount: timedelta) -> datetime:
        """The instant when ``amount`` of open time has passed after ``at``."""
        at = _utc(at)
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative, got {amount!r}")
        if self.always_open:
            return at + amount
        left = amount
        for start, end in self._forward(at):
            if end <= at:
                continue
            start = max(start, at)
            if start + left <= end:
                return start + left
            left -= end - start
        raise AssertionError("unreachable: _forward never ends")

    # -- open intervals in UTC -------------------------------------------------------
    def _intervals(self, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """Merged open intervals that overlap ``[since, until]``, in order."""
        if self.always_open:
            return [(since, until + timedelta(microseconds=1))]
        first = since.astimezone(self.tz).date() - timedelta(days=1)
        last = until.astimezone(self.tz).date() + timedelta(days=1)
        return [
            (start, end)
            for start, end in self._merged(first, last)
            if end > since and start <= until
        ]

    def _forward(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals from the one around ``at`` on, in order, without end.

        Generated a week at a time; a piece already covered by an earlier week (an
        overnight span) is clipped, so the intervals never overlap (they may touch)."""
        if self.always_open:
            yield (at, datetime.max.replace(tzinfo=UTC))
            return
        day = at.astimezone(self.tz).date() - timedelta(days=1)
        covered = datetime.min.replace(tzinfo=UTC)
        while True:
            last = day + timedelta(days=_SEARCH_DAYS)
            for start, end in self._merged(day, last):
                if end > covered:
                    yield max(start, covered), end
                    covered = end
            day = last + timedelta(days=1)

    def _merged(self, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """Open intervals of the spans starting on local dates ``first..last``."""
        raw = sorted(
            (start, end)
            for start, end in self._raw(first, last)
            for start, end in self._without_holidays(start, end)
        )
        merged: list[tuple[datetime, datetime]] = []
        for start, end in raw:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _raw(self, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        spans = self.spans or tuple(Span(day, 0, _DAY_MINUTES) for day in range(7))
        day = first
        while day <= last:
            for span in spans:
                if span.weekday == day.weekday():
                    start, end = self._at(day, span.start), self._at(day, span.end)
                    if end > start:
                        yield start, end
            day += timedelta(days=1)

    def _without_holidays(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime]]:
        """Split ``[start, end)`` (at most two local dates) around holiday dates."""
        day = start.astimezone(self.tz).date()
        cursor = start
        while cursor < end:
            midnight = self._at(day + timedelta(days=1), 0)
            piece_end = min(end, midnight)
            if day not in self.holidays and piece_end > cursor:
                yield cursor, piece_end
            cursor, day = max(cursor, midnight), day + timedelta(days=1)

    def _at(self, day: date, minutes: int) -> datetime:
        local = datetime.combine(day, time(0)) + timedelta(minutes=minutes)
        return local.replace(tzinfo=self.tz).astimezone(UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {value!r}")
    return value.astimezone(UTC)


ALWAYS_OPEN = BusinessHours((), frozenset(), ZoneInfo("UTC"))


# -- parsing the settings --------------------------------------------------------------
def parse_hours(text: str | None) -> tuple[Span, ...]:
    """``mon-fri 09:00-18:00; sat 10:00-14:00`` -> spans; ValueError names the bad part.

    Groups are separated by ``;``; a group is days (``mon``, ``mon-fri``, ``fri-mon``
    or ``mon,wed``) and one or more ranges separated by ``,``."""
    spans: list[Span] = []
    for group in (part.strip() for part in (text or "").split(";")):
        if not group:
            continue
        days_text, _, ranges_text = group.partition(" ")
        if not ranges_text.strip():
            raise ValueError(f"'{group}' needs days and hours, e.g. 'mon-fri 09:00-18:00'")
        days = _days(days_text.lower())
        for piece in ranges_text.replace(" ", "").split(","):
            start, end = _range(piece)
            spans.extend(Span(day, start, end) for day in days)
    return tuple(spans)


def parse_holidays(text: str | None) -> frozenset[date]:
    holidays = set()
    for piece in (part.strip() for part in (text or "").split(",")):
        if not piece:
            continue
        try:
            holidays.add(date.fromisoformat(piece))
        except ValueError:
            raise ValueError(f"'{piece}' is not a date like 2026-12-25") from None
    return frozenset(holidays)


def _days(text: str) -> list[int]:
    days: list[int] = []
    for piece in text.split(","):
        first, dash, last = piece.partition("-")
        start = _day(first)
        end = _day(last) if dash else start
        days.extend((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return days


def _day(text: str) -> int:
    if text not in DAYS:
        raise ValueError(f"'{text}' is not a day (use {', '.join(DAYS)})")
    return DAYS.index(text)


def _range(text: str) -> tuple[int, int]:
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a time range like 09:00-18:00")
    hour_a, minute_a, hour_b, minute_b = (int(value) for value in match.groups())
    if hour_a > 23 or minute_a > 59 or hour_b > 24 or minute_b > 59 or (hour_b, minute_b) > (24, 0):
        raise ValueError(f"'{text}' is not a time range like 09:00-18:00")
    start, end = hour_a * 60 + minute_a, hour_b * 60 + minute_b
    if start == end:
        raise ValueError(f"'{text}' opens and closes at the same time")
    return start, end if end > start else end + _DAY_MINUTES
