"""On-call rotation arithmetic. Every expected instant is worked out by hand in the tables.

Offsets used: Europe/Berlin CET = UTC+1, CEST = UTC+2 (2026 changes: Mar 29 02:00 -> 03:00,
Oct 25 03:00 -> 02:00); America/New_York EST = UTC-5, EDT = UTC-4 (2026 changes: Mar 8
02:00 -> 03:00, Nov 1 02:00 -> 01:00). ONCALL_START 2026-01-05 is a Monday.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.services.refusal import Refusal
from bot.services.rotation import (
    COVER_USAGE,
    Override,
    Rotation,
    Shift,
    next_in_rotation,
    on_call_at,
    parse_duration,
    upcoming,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
A, B, C, D, E = "UALICE01", "UBOB0001", "UCAROL01", "UDAVE001", "UERIN001"


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def rot(users: tuple[str, ...], days: int, handoff: time, start: date, tz: ZoneInfo) -> Rotation:
    return Rotation(users=users, rotation_days=days, handoff=handoff, start=start, tz=tz)


def cover(user: str, starts_at: datetime, ends_at: datetime, created: int = 1) -> Override:
    return Override(user, starts_at, ends_at, created_at=utc(1, created))


def on(user: str, starts_at: datetime, ends_at: datetime) -> Shift:
    return Shift(user, starts_at, ends_at, override=False)


def ov(user: str, starts_at: datetime, ends_at: datetime) -> Shift:
    return Shift(user, starts_at, ends_at, override=True)


NINE = time(9)
# Shift k starts Monday Jan 5 + 7k, 09:00 Berlin = 08:00 UTC in winter.
# k: -3 A Dec 15 | -1 C Dec 29 | 0 A Jan 5 | 1 B Jan 12 | 2 C Jan 19 | 3 A Jan 26 | 4 B Feb 2
WEEKLY = rot((A, B, C), 7, NINE, date(2026, 1, 5), BERLIN)
ONE = rot((A,), 7, NINE, date(2026, 1, 5), BERLIN)
NOBODY = rot((), 7, NINE, date(2026, 1, 5), BERLIN)
DAILY = rot((A, B, C), 1, NINE, date(2026, 1, 5), BERLIN)
BERLIN_SPRING = rot((A, B), 1, NINE, date(2026, 3, 28), BERLIN)
BERLIN_FALL = rot((A, B), 1, NINE, date(2026, 10, 24), BERLIN)
NY_SPRING = rot((A, B), 1, NINE, date(2026, 3, 7), NEW_YORK)
NY_FALL = rot((A, B), 1, NINE, date(2026, 10, 31), NEW_YORK)
# Handoffs inside the gap (Mar 29 Berlin, Mar 8 New York) or the repeated hour.
BERLIN_GAP = rot((A, B), 1, time(2, 30), date(2026, 3, 28), BERLIN)
NY_GAP = rot((A, B), 1, time(2, 30), date(2026, 3, 7), NEW_YORK)
BERLIN_TWICE = rot((A, B), 1, time(2, 30), date(2026, 10, 24), BERLIN)
NY_TWICE = rot((A, B), 1, time(1, 30), date(2026, 10, 31), NEW_YORK)

ROTATION_CASES = [
    # id, rotation, at, expected
    ("first-shift-at-start", WEEKLY, utc(1, 5, 8), on(A, utc(1, 5, 8), utc(1, 12, 8))),
    ("handoff-is-local-09:00", WEEKLY, utc(1, 12, 7, 59), on(A, utc(1, 5, 8), utc(1, 12, 8))),
    ("weekly-mid-shift", WEEKLY, utc(1, 14, 12), on(B, utc(1, 12, 8), utc(1, 19, 8))),
    ("exact-handoff-is-next", WEEKLY, utc(1, 19, 8), on(C, utc(1, 19, 8), utc(1, 26, 8))),
    ("wraps-around", WEEKLY, utc(1, 27), on(A, utc(1, 26, 8), utc(2, 2, 8))),
    (
        "minute-before-start-is-last-user",
        WEEKLY,
        utc(1, 5, 7, 59),
        on(C, utc(12, 29, 8, year=2025), utc(1, 5, 8)),
    ),
    (
        "weeks-before-start",
        WEEKLY,
        utc(12, 20, 12, year=2025),
        on(A, utc(12, 15, 8, year=2025), utc(12, 22, 8, year=2025)),
    ),
    (
        "a-year-before-start",  # k = -53, -53 % 3 == 1
        WEEKLY,
        utc(1, 1, 12, year=2025),
        on(B, utc(12, 30, 8, year=2024), utc(1, 6, 8, year=2025)),
    ),
    ("one-user", ONE, utc(1, 14, 12), on(A, utc(1, 12, 8), utc(1, 19, 8))),
    ("no-users", NOBODY, utc(1, 14, 12), None),
    ("daily", DAILY, utc(1, 7, 12), on(C, utc(1, 7, 8), utc(1, 8, 8))),
    ("daily-before-handoff", DAILY, utc(1, 8, 7), on(C, utc(1, 7, 8), utc(1, 8, 8))),
    # DST: weekly shift k=11 (Mar 23, C) spans spring-forward: 167 h; k=41 (Oct 19, C): 169 h.
    ("weekly-berlin-spring", WEEKLY, utc(3, 28, 12), on(C, utc(3, 23, 8), utc(3, 30, 7))),
    ("weekly-berlin-fall", WEEKLY, utc(10, 25, 12), on(C, utc(10, 19, 7), utc(10, 26, 8))),
    ("berlin-spring-23h", BERLIN_SPRING, utc(3, 29, 3), on(A, utc(3, 28, 8), utc(3, 29, 7))),
    ("berlin-spring-after", BERLIN_SPRING, utc(3, 29, 7), on(B, utc(3, 29, 7), utc(3, 30, 7))),
    ("berlin-fall-25h", BERLIN_FALL, utc(10, 25, 7, 30), on(A, utc(10, 24, 7), utc(10, 25, 8))),
    ("ny-spring-23h", NY_SPRING, utc(3, 8, 12), on(A, utc(3, 7, 14), utc(3, 8, 13))),
    ("ny-spring-after", NY_SPRING, utc(3, 8, 13, 30), on(B, utc(3, 8, 13), utc(3, 9, 13))),
    ("ny-fall-25h", NY_FALL, utc(11, 1, 13, 30), on(A, utc(10, 31, 13), utc(11, 1, 14))),
    # 02:30 does not exist on Mar 29 in Berlin: read as CET, 01:30 UTC (= 03:30 CEST).
    (
        "berlin-gap-before",
        BERLIN_GAP,
        utc(3, 29, 1, 29),
        on(A, utc(3, 28, 1, 30), utc(3, 29, 1, 30)),
    ),
    ("berlin-gap-shift", BERLIN_GAP, utc(3, 29, 12), on(B, utc(3, 29, 1, 30), utc(3, 30, 0, 30))),
    # 02:30 does not exist on Mar 8 in New York: read as EST, 07:30 UTC (= 03:30 EDT).
    ("ny-gap-shift", NY_GAP, utc(3, 8, 12), on(B, utc(3, 8, 7, 30), utc(3, 9, 6, 30))),
    # 02:30 happens twice on Oct 25 in Berlin: the first (CEST), 00:30 UTC.
    ("berlin-twice", BERLIN_TWICE, utc(10, 25, 1), on(B, utc(10, 25, 0, 30), utc(10, 26, 1, 30))),
    # 01:30 happens twice on Nov 1 in New York: the first (EDT), 05:30 UTC.
    (
        "ny-twice-first-pass",
        NY_TWICE,
        utc(11, 1, 5, 15),
        on(A, utc(10, 31, 5, 30), utc(11, 1, 5, 30)),
    ),
    (
        "ny-twice-second-pass",
        NY_TWICE,
        utc(11, 1, 6, 15),
        on(B, utc(11, 1, 5, 30), utc(11, 2, 6, 30)),
    ),
]


@pytest.mark.parametrize(
    ("rotation", "at", "expected"),
    [case[1:] for case in ROTATION_CASES],
    ids=[case[0] for case in ROTATION_CASES],
)
def test_rotation_shift(rotation: Rotation, at: datetime, expected: Shift | None) -> None:
    assert on_call_at(rotation, [], at) == expected


INSIDE = cover(D, utc(1, 14, 10), utc(1, 14, 18))
ACROSS = cover(D, utc(1, 18, 20), utc(1, 20, 8))  # spans the Jan 19 08:00 handoff B -> C
LONG_OLD = cover(D, utc(1, 13), utc(1, 16), created=1)
SHORT_NEW = cover(E, utc(1, 14), utc(1, 15), created=2)

OVERRIDE_CASES = [
    # id, rotation, overrides, at, expected
    ("inside", WEEKLY, [INSIDE], utc(1, 14, 12), ov(D, utc(1, 14, 10), utc(1, 14, 18))),
    ("inside-before", WEEKLY, [INSIDE], utc(1, 14, 9), on(B, utc(1, 12, 8), utc(1, 14, 10))),
    ("inside-after", WEEKLY, [INSIDE], utc(1, 14, 18), on(B, utc(1, 14, 18), utc(1, 19, 8))),
    ("across-handoff", WEEKLY, [ACROSS], utc(1, 19, 8), ov(D, utc(1, 18, 20), utc(1, 20, 8))),
    ("across-before", WEEKLY, [ACROSS], utc(1, 18, 12), on(B, utc(1, 12, 8), utc(1, 18, 20))),
    ("across-after", WEEKLY, [ACROSS], utc(1, 20, 8), on(C, utc(1, 20, 8), utc(1, 26, 8))),
    ("newest-wins", WEEKLY, [LONG_OLD, SHORT_NEW], utc(1, 14, 12), ov(E, utc(1, 14), utc(1, 15))),
    (
        "newest-wins-any-order",
        WEEKLY,
        [SHORT_NEW, LONG_OLD],
        utc(1, 14, 12),
        ov(E, utc(1, 14), utc(1, 15)),
    ),
    (
        "older-before-newer",
        WEEKLY,
        [LONG_OLD, SHORT_NEW],
        utc(1, 13, 12),
        ov(D, utc(1, 13), utc(1, 14)),
    ),
    (
        "older-after-newer",
        WEEKLY,
        [LONG_OLD, SHORT_NEW],
        utc(1, 15, 12),
        ov(D, utc(1, 15), utc(1, 16)),
    ),
    (
        "newer-long-hides-older",
        WEEKLY,
        [cover(E, utc(1, 14), utc(1, 15), created=1), cover(D, utc(1, 13), utc(1, 16), created=2)],
        utc(1, 14, 12),
        ov(D, utc(1, 13), utc(1, 16)),
    ),
    (
        "same-created-later-listed-wins",
        WEEKLY,
        [cover(D, utc(1, 13), utc(1, 16)), cover(E, utc(1, 14), utc(1, 15))],
        utc(1, 14, 12),
        ov(E, utc(1, 14), utc(1, 15)),
    ),
    (
        "same-created-later-listed-hides",
        WEEKLY,
        [cover(E, utc(1, 14), utc(1, 15)), cover(D, utc(1, 13), utc(1, 16))],
        utc(1, 14, 12),
        ov(D, utc(1, 13), utc(1, 16)),
    ),
    (
        "back-to-back-same-user-merge",
        WEEKLY,
        [cover(D, utc(1, 13), utc(1, 14)), cover(D, utc(1, 14), utc(1, 15), created=2)],
        utc(1, 13, 12),
        ov(D, utc(1, 13), utc(1, 15)),
    ),
    (
        "expired",
        WEEKLY,
        [cover(D, utc(1, 1), utc(1, 2))],
        utc(1, 14, 12),
        on(B, utc(1, 12, 8), utc(1, 19, 8)),
    ),
    (
        "ended-exactly-now",
        WEEKLY,
        [cover(D, utc(1, 14, 10), utc(1, 14, 12))],
        utc(1, 14, 12),
        on(B, utc(1, 14, 12), utc(1, 19, 8)),
    ),
    (
        "future-cuts-current-shift",
        WEEKLY,
        [cover(D, utc(1, 16), utc(1, 17))],
        utc(1, 14, 12),
        on(B, utc(1, 12, 8), utc(1, 16)),
    ),
    ("no-users-covered", NOBODY, [INSIDE], utc(1, 14, 12), ov(D, utc(1, 14, 10), utc(1, 14, 18))),
    ("no-users-uncovered", NOBODY, [INSIDE], utc(1, 14, 19), None),
    (
        "local-time-inputs",
        WEEKLY,
        [
            cover(
                D,
                datetime(2026, 1, 14, 11, tzinfo=BERLIN),
                datetime(2026, 1, 14, 19, tzinfo=BERLIN),
            )
        ],
        datetime(2026, 1, 14, 13, tzinfo=BERLIN),
        ov(D, utc(1, 14, 10), utc(1, 14, 18)),
    ),
]


@pytest.mark.parametrize(
    ("rotation", "overrides", "at", "expected"),
    [case[1:] for case in OVERRIDE_CASES],
    ids=[case[0] for case in OVERRIDE_CASES],
)
def test_overrides(
    rotation: Rotation, overrides: list[Override], at: datetime, expected: Shift | None
) -> None:
    assert on_call_at(rotation, overrides, at) == expected


UPCOMING_CASES = [
    # id, rotation, overrides, at, count, expected
    (
        "plain",
        WEEKLY,
        [],
        utc(1, 14, 12),
        3,
        [
            on(C, utc(1, 19, 8), utc(1, 26, 8)),
            on(A, utc(1, 26, 8), utc(2, 2, 8)),
            on(B, utc(2, 2, 8), utc(2, 9, 8)),
        ],
    ),
    ("count-1", WEEKLY, [], utc(1, 14, 12), 1, [on(C, utc(1, 19, 8), utc(1, 26, 8))]),
    ("count-0", WEEKLY, [], utc(1, 14, 12), 0, []),
    (
        "override-splits-later-shift",
        WEEKLY,
        [cover(D, utc(1, 21, 8), utc(1, 22, 8))],
        utc(1, 14, 12),
        3,
        [
            on(C, utc(1, 19, 8), utc(1, 21, 8)),
            ov(D, utc(1, 21, 8), utc(1, 22, 8)),
            on(C, utc(1, 22, 8), utc(1, 26, 8)),
        ],
    ),
    (
        "now-covered-rest-of-shift-follows",
        WEEKLY,
        [INSIDE],
        utc(1, 14, 12),
        3,
        [
            on(B, utc(1, 14, 18), utc(1, 19, 8)),
            on(C, utc(1, 19, 8), utc(1, 26, 8)),
            on(A, utc(1, 26, 8), utc(2, 2, 8)),
        ],
    ),
    (
        "override-across-handoff",
        WEEKLY,
        [ACROSS],
        utc(1, 14, 12),
        3,
        [
            ov(D, utc(1, 18, 20), utc(1, 20, 8)),
            on(C, utc(1, 20, 8), utc(1, 26, 8)),
            on(A, utc(1, 26, 8), utc(2, 2, 8)),
        ],
    ),
    (
        "overlapping",
        WEEKLY,
        [LONG_OLD, SHORT_NEW],
        utc(1, 12, 12),
        4,
        [
            ov(D, utc(1, 13), utc(1, 14)),
            ov(E, utc(1, 14), utc(1, 15)),
            ov(D, utc(1, 15), utc(1, 16)),
            on(B, utc(1, 16), utc(1, 19, 8)),
        ],
    ),
    (
        "across-dst",
        WEEKLY,
        [],
        utc(3, 20, 12),
        2,
        [on(C, utc(3, 23, 8), utc(3, 30, 7)), on(A, utc(3, 30, 7), utc(4, 6, 7))],
    ),
    (
        "no-users-only-overrides",
        NOBODY,
        [cover(D, utc(1, 20), utc(1, 21)), cover(E, utc(1, 22), utc(1, 23))],
        utc(1, 14, 12),
        3,
        [ov(D, utc(1, 20), utc(1, 21)), ov(E, utc(1, 22), utc(1, 23))],
    ),
    ("no-users-nothing", NOBODY, [], utc(1, 14, 12), 3, []),
]


@pytest.mark.parametrize(
    ("rotation", "overrides", "at", "count", "expected"),
    [case[1:] for case in UPCOMING_CASES],
    ids=[case[0] for case in UPCOMING_CASES],
)
def test_upcoming(
    rotation: Rotation,
    overrides: list[Override],
    at: datetime,
    count: int,
    expected: list[Shift],
) -> None:
    assert upcoming(rotation, overrides, at, count) == expected


NEXT_CASES = [
    # id, rotation, at, expected
    ("b-then-c", WEEKLY, utc(1, 14, 12), C),
    ("wraps", WEEKLY, utc(1, 20), A),
    ("before-start", WEEKLY, utc(1, 5, 7, 59), A),
    ("at-start", WEEKLY, utc(1, 5, 8), B),
    ("dst-day-before-handoff", BERLIN_SPRING, utc(3, 29, 6, 59), B),
    ("dst-day-after-handoff", BERLIN_SPRING, utc(3, 29, 7), A),
    ("skips-same-person", rot((A, A, B), 7, NINE, date(2026, 1, 5), BERLIN), utc(1, 6), B),
    ("one-user", ONE, utc(1, 14, 12), None),
    ("no-users", NOBODY, utc(1, 14, 12), None),
]


@pytest.mark.parametrize(
    ("rotation", "at", "expected"),
    [case[1:] for case in NEXT_CASES],
    ids=[case[0] for case in NEXT_CASES],
)
def test_next_in_rotation(rotation: Rotation, at: datetime, expected: str | None) -> None:
    assert next_in_rotation(rotation, at) == expected


def test_times_come_back_in_utc() -> None:
    local = datetime(2026, 1, 14, 13, tzinfo=BERLIN)
    override = cover(D, local, local + timedelta(hours=1))
    shifts = [on_call_at(WEEKLY, [], local), on_call_at(WEEKLY, [override], local)]
    shifts += upcoming(WEEKLY, [override], local)
    for shift in shifts:
        assert shift is not None
        assert shift.starts_at.tzinfo is UTC
        assert shift.ends_at.tzinfo is UTC
    assert override.starts_at.tzinfo is UTC


def test_from_settings() -> None:
    settings = Settings.model_validate(
        {
            "oncall_users": f"{A},{B}",
            "oncall_rotation_days": "14",
            "oncall_handoff": "10:30",
            "oncall_start": "2026-02-02",
            "timezone": "America/New_York",
        }
    )
    assert Rotation.from_settings(settings) == Rotation(
        (A, B), 14, time(10, 30), date(2026, 2, 2), NEW_YORK
    )


def test_from_default_settings() -> None:
    assert Rotation.from_settings(Settings()) == Rotation(
        (), 7, time(9), date(2026, 1, 5), ZoneInfo("UTC")
    )


NAIVE = datetime(2026, 1, 14, 12)
INVALID_CASES = [
    ("zero-days", lambda: rot((A,), 0, NINE, date(2026, 1, 5), BERLIN), "at least 1"),
    (
        "aware-handoff",
        lambda: rot((A,), 7, time(9, tzinfo=UTC), date(2026, 1, 5), BERLIN),
        "must not carry a tzinfo",
    ),
    ("empty-override", lambda: cover(D, utc(1, 14), utc(1, 14)), "must end after it starts"),
    ("naive-override", lambda: Override(D, NAIVE, utc(1, 15), utc(1, 1)), "timezone-aware"),
    ("naive-at", lambda: on_call_at(WEEKLY, [], NAIVE), "timezone-aware"),
    ("naive-upcoming", lambda: upcoming(WEEKLY, [], NAIVE), "timezone-aware"),
    ("naive-next", lambda: next_in_rotation(WEEKLY, NAIVE), "timezone-aware"),
    ("negative-count", lambda: upcoming(WEEKLY, [], utc(1, 14), -1), "must not be negative"),
]


@pytest.mark.parametrize(
    ("call", "message"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_invalid_inputs(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("3d", timedelta(days=3)),
        ("1d 4h", timedelta(hours=28)),
        ("45 min", timedelta(minutes=45)),
        ("2 hours", timedelta(hours=2)),
        ("1 day, 2 hours", timedelta(hours=26)),
        ("1.5h", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
        ("1w", timedelta(days=7)),
        ("1m", timedelta(minutes=1)),
        ("30d", timedelta(days=30)),
        ("720h", timedelta(days=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


NOT_A_DURATION = "is not a duration; try 2h, 90m or 1d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", f"'abc' {NOT_A_DURATION}"),
        ("90", f"'90' {NOT_A_DURATION}"),
        ("1h30", f"'1h30' {NOT_A_DURATION}"),
        ("2 parsecs", f"'2 parsecs' {NOT_A_DURATION}"),
        ("1..5h", f"'1..5h' {NOT_A_DURATION}"),
        ("h", f"'h' {NOT_A_DURATION}"),
        ("", "no duration given; try 2h, 90m or 1d"),
        ("   ", "no duration given; try 2h, 90m or 1d"),
        ("-2h", "'-2h' is negative; a cover lasts a positive time, try 2h, 90m or 1d"),
        ("0m", "'0m' is too short; a cover lasts at least 1 minute"),
        ("0h 0m", "'0h 0m' is too short; a cover lasts at least 1 minute"),
        ("0.5m", "'0.5m' is too short; a cover lasts at least 1 minute"),
        ("31d", "'31d' is too long; a cover lasts at most 30 days"),
        ("30d 1m", "'30d 1m' is too long; a cover lasts at most 30 days"),
        ("5w", "'5w' is too long; a cover lasts at most 30 days"),
        ("99999999999999d", "'99999999999999d' is too long; a cover lasts at most 30 days"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(Refusal) as raised:
        parse_duration(text)
    assert raised.value.sentence == f"{message.capitalize()}. {COVER_USAGE}"
