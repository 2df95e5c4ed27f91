"""On-call rotation arithmetic: pure functions, no I/O.

Rotation rule: shift ``k`` (any integer; negative before ``ONCALL_START``) belongs to
``users[k % len(users)]`` and starts at the local wall-clock time ``ONCALL_HANDOFF`` on the
date ``ONCALL_START + k * ONCALL_ROTATION_DAYS`` in ``TIMEZONE``. Handoffs keep their local
wall-clock time across DST, so a shift spanning a change is an hour shorter or longer in UTC.

DST rule (PEP 495 ``fold=0``, as java.time does): a handoff time that does not exist (in
the spring-forward gap) is read with the offset in force before the change, which moves it
later by the length of the gap (02:30 on the Berlin spring-forward day is 03:30 CEST,
01:30 UTC); a handoff time that occurs twice (fall-back) is the first, earlier, occurrence.

Override rule (as grafana/oncall and PagerDuty): an override puts its user on call for
``[starts_at, ends_at)``, whoever the rotation says. Where overrides overlap, the newest
``created_at`` wins; on equal ``created_at`` the later one in the given sequence wins.

Every datetime taken must be timezone-aware; every datetime returned is in UTC.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import count as counter
from itertools import islice
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from bot.services.refusal import Refusal

if TYPE_CHECKING:
    from bot.config import Settings

MAX_COVER = timedelta(days=30)
_USAGE = "try 2h, 90m or 1d"
COVER_USAGE = (
    "Usage: `/oncall cover @user <duration>`, e.g. `/oncall cover @ada 8h` or "
    "`/oncall cover @ada 1d 4h`. The cover starts now and beats the rotation until it ends."
)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Rotation:
    """Who takes shifts, how long each lasts, and where the count starts."""

    users: tuple[str, ...]
    rotation_days: int
    handoff: time
    start: date
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.rotation_days < 1:
            raise ValueError("rotation_days must be at least 1")
        if self.handoff.tzinfo is not None:
            raise ValueError("handoff is a local wall-clock time and must not carry a tzinfo")

    @classmethod
    def from_settings(cls, settings: Settings) -> Rotation:
        return cls(
            users=tuple(settings.oncall_users),
            rotation_days=settings.oncall_rotation_days,
            handoff=settings.oncall_handoff,
            start=settings.oncall_start,
            tz=settings.tz,
        )


@dataclass(frozen=True)
class Override:
    """``user`` covers ``[starts_at, ends_at)``; the newest ``created_at`` wins overlaps.

    The datetimes are stored in UTC (comparing aware datetimes of one zone ignores
    ``fold``, so mixed local values would order wrongly around a fall-back).
    """

    user: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at", "created_at"):
            object.__setattr__(self, name, _utc(getattr(self, name), name))
        if self.ends_at <= self.starts_at:
            raise ValueError("an override must end after it starts")


@dataclass(frozen=True)
class Shift:
    """``user`` is on call for ``[starts_at, ends_at)`` (UTC); ``override`` if by cover."""

    user: str
    starts_at: datetime
    ends_at: datetime
    override: bool


class _Owner(NamedTuple):
    """Who holds a stretch of time: an override's user, rotation shift ``k``, or nobody."""

    user: str | None
    override: bool
    k: int | None


def _handoff(rotation: Rotation, k: int) -> datetime:
    """The UTC start of rotation shift ``k`` (fold=0 for gaps and repeats, see module doc)."""
    day = rotation.start + timedelta(days=k * rotation.rotation_days)
    return datetime.combine(day, rotation.handoff, tzinfo=rotation.tz).astimezone(UTC)


def _shift_index(rotation: Rotation, at: datetime) -> int:
    """The rotation shift ``k`` with ``handoff(k) <= at < handoff(k + 1)``."""
    elapsed = (at.astimezone(rotation.tz).date() - rotation.start).days
    k = elapsed // rotation.rotation_days
    # The local date is a first guess: the handoff hour, and local dates repeating
    # around a transition, can put `at` in a neighbouring shift.
    while _handoff(rotation, k) > at:
        k -= 1
    while _handoff(rotation, k + 1) <= at:
        k += 1
    return k


def _owner(rotation: Rotation, overrides: Sequence[Override], at: datetime) -> _Owner:
    active = [
        (o.created_at, i, o.user) for i, o in enumerate(overrides) if o.starts_at <= at < o.ends_at
    ]
    if active:
        return _Owner(max(active)[2], True, None)
    if not rotation.users:
        return _Owner(None, False, None)
    k = _shift_index(rotation, at)
    return _Owner(rotation.users[k % len(rotation.users)], False, k)


def _dedup(points: Iterator[datetime]) -> Iterator[datetime]:
    last: datetime | None = None
    for point in points:
        if point != last:
            yield point
            last = point


def _points_after(
    rotation: Rotation, overrides: Sequence[Override], at: datetime
) -> Iterator[datetime]:
    """Every instant after ``at`` where the owner may change, ascending."""
    edges = sorted(t for o in overrides for t in (o.starts_at, o.ends_at) if t > at)
    if not rotation.users:
        return _dedup(iter(edges))
    first = _shift_index(rotation, at) + 1
    handoffs = (_handoff(rotation, k) for k in counter(first))
    return _dedup(heapq.merge(handoffs, edges))


def _points_until(
    rotation: Rotation, overrides: Sequence[Override], at: datetime
) -> Iterator[datetime]:
    """Every instant at or before ``at`` where the owner may change, descending."""
    edges = sorted(
        (t for o in overrides for t in (o.starts_at, o.ends_at) if t <= at), reverse=True
    )
    if not rotation.users:
        return _dedup(iter(edges))
    last = _shift_index(rotation, at)
    handoffs = (_handoff(rotation, k) for k in counter(last, -1))
    return _dedup(heapq.merge(handoffs, edges, reverse=True))


class _Segment(NamedTuple):
    owner: _Owner
    starts_at: datetime | None  # None: since forever (only when nobody is on call)
    ends_at: datetime | None  # None: forever after (only when nobody is on call)


def _segments(
    rotation: Rotation, overrides: Sequence[Override], at: datetime
) -> Iterator[_Segment]:
    """The stretch of constant owner around ``at``, then each following one.

    Rotation shifts are cut where overrides start and end; an override's stretch is not
    cut at handoffs, and back-to-back overrides of one user form one stretch.
    """
    owner = _owner(rotation, overrides, at)
    start: datetime | None = None
    for point in _points_until(rotation, overrides, at):
        if _owner(rotation, overrides, point) != owner:
            break
        start = point
    for point in _points_after(rotation, overrides, at):
        following = _owner(rotation, overrides, point)
        if following != owner:
            yield _Segment(owner, start, point)
            owner, start = following, point
    yield _Segment(owner, start, None)


def _as_shift(segment: _Segment) -> Shift | None:
    user, starts_at, ends_at = segment.owner.user, segment.starts_at, segment.ends_at
    if user is None or starts_at is None or ends_at is None:
        return None
    return Shift(user, starts_at, ends_at, segment.owner.override)


def on_call_at(rotation: Rotation, overrides: Sequence[Override], at: datetime) -> Shift | None:
    """The shift covering ``at``; None when there are no users and no override covers it."""
    return _as_shift(next(_segments(rotation, overrides, _utc(at, "at"))))


def upcoming(
    rotation: Rotation, overrides: Sequence[Override], at: datetime, count: int = 3
) -> list[Shift]:
    """Up to ``count`` shifts after the one covering ``at``, overrides cutting into them."""
    if count < 0:
        raise ValueError("count must not be negative")
    later = islice(_segments(rotation, overrides, _utc(at, "at")), 1, None)
    shifts = (shift for shift in map(_as_shift, later) if shift is not None)
    return list(islice(shifts, count))


def next_in_rotation(rotation: Rotation, at: datetime) -> str | None:
    """The first user after the rotation's current one who is someone else (level 2).

    Overrides are not considered. None when the rotation has fewer than two distinct users.
    """
    users = rotation.users
    if not users:
        return None
    k = _shift_index(rotation, _utc(at, "at"))
    current = users[k % len(users)]
    for step in range(1, len(users)):
        user = users[(k + step) % len(users)]
        if user != current:
            return user
    return None


_UNITS: dict[str, timedelta] = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_DURATION = re.compile(rf"(?:{_PART.pattern}[\s,]*)+")


def parse_duration(text: str) -> timedelta:
    """Read ``90m``, ``2h``, ``1h30m``, ``3d``, ``1d 4h``, ``45 min``, ``2 hours``, ``1.5h``.

    Refuses anything else, and durations under one minute or over 30 days, with a
    sentence for the person and the usage.
    """
    shown = text.strip()
    if not shown:
        raise _refusal(f"no duration given; {_USAGE}")
    if shown.startswith("-"):
        raise _refusal(f"'{shown}' is negative; a cover lasts a positive time, {_USAGE}")
    parts = _PART.findall(shown.lower()) if _DURATION.fullmatch(shown.lower()) else []
    if not parts or any(unit not in _UNITS for _, unit in parts):
        raise _refusal(f"'{shown}' is not a duration; {_USAGE}")
    try:
        total = sum((float(number) * _UNITS[unit] for number, unit in parts), timedelta())
    except OverflowError:
        total = timedelta.max
    if total < timedelta(minutes=1):
        raise _refusal(f"'{shown}' is too short; a cover lasts at least 1 minute")
    if total > MAX_COVER:
        raise _refusal(f"'{shown}' is too long; a cover lasts at most 30 days")
    return total


def _refusal(problem: str) -> Refusal:
    return Refusal(f"{problem.capitalize()}. {COVER_USAGE}")
