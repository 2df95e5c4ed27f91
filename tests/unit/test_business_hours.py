"""Business-hours arithmetic: table-driven across DST changes, holidays, week ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, load_settings
from storage.business_hours import (
    ALWAYS_OPEN,
    BusinessHours,
    parse_holidays,
    parse_hours,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEK = "mon-fri 09:00-18:00; sat 10:00-14:00"
WEEKDAYS = "mon-fri 09:00-18:00"


def hours(text: str, tz: ZoneInfo, holidays: str = "") -> BusinessHours:
    return BusinessHours(parse_hours(text), parse_holidays(holidays), tz)


def local(tz: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=tz)  # type: ignore[misc,arg-type]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc,arg-type]


# 2026: Europe/Berlin springs forward Sun 29 Mar 02:00 -> 03:00 and falls back
# Sun 25 Oct 03:00 -> 02:00; America/New_York on Sun 8 Mar and Sun 1 Nov.
ADD_CASES = [
    # (schedule, tz, holidays, start (local), minutes, expected (UTC), why)
    (
        WEEKDAYS,
        BERLIN,
        "",
        (2026, 1, 9, 17, 55),
        30,
        utc(2026, 1, 12, 8, 25),
        "Friday 17:55 -> Monday",
    ),
    (WEEK, BERLIN, "", (2026, 1, 10, 13, 50), 30, utc(2026, 1, 12, 8, 20), "Saturday -> Monday"),
    (WEEK, BERLIN, "", (2026, 1, 10, 20, 0), 30, utc(2026, 1, 12, 8, 30), "closed: from opening"),
    (WEEK, BERLIN, "", (2026, 1, 12, 9, 0), 9 * 60, utc(2026, 1, 12, 17, 0), "a full day"),
    (WEEKDAYS, BERLIN, "2026-01-12", (2026, 1, 9, 17, 55), 30, utc(2026, 1, 13, 8, 25), "holiday"),
    (
        WEEKDAYS,
        BERLIN,
        "",
        (2026, 3, 27, 17, 55),
        30,
        utc(2026, 3, 30, 7, 25),
        "over spring forward",
    ),
    (WEEKDAYS, BERLIN, "", (2026, 10, 23, 17, 55), 30, utc(2026, 10, 26, 8, 25), "over fall back"),
    (
        WEEKDAYS,
        NEW_YORK,
        "",
        (2026, 3, 6, 17, 55),
        30,
        utc(2026, 3, 9, 13, 25),
        "NY spring forward",
    ),
    (WEEKDAYS, NEW_YORK, "", (2026, 10, 30, 17, 55), 30, utc(2026, 11, 2, 14, 25), "NY fall back"),
    ("sun 01:00-04:00", BERLIN, "", (2026, 3, 29, 1, 0), 90, utc(2026, 3, 29, 1, 30), "in the gap"),
    ("sun 01:00-04:00", BERLIN, "", (2026, 10, 25, 1, 0), 180, utc(2026, 10, 25, 2, 0), "repeat"),
    ("fri 22:00-02:00", BERLIN, "", (2026, 1, 9, 23, 0), 120, utc(2026, 1, 10, 0, 0), "overnight"),
    (
        "fri 22:00-02:00",
        BERLIN,
        "2026-01-10",
        (2026, 1, 9, 21, 0),
        150,
        utc(2026, 1, 16, 21, 30),
        "holiday cuts the part after midnight",
    ),  # fmt: skip
    (
        "sun 20:00-24:00; mon 00:00-02:00",
        BERLIN,
        "",
        (2026, 1, 11, 23, 0),
        120,
        utc(2026, 1, 12, 0, 0),
        "a week boundary, spans merged",
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    ("text", "tz", "holidays", "start", "minutes", "expected"),
    [case[:6] for case in ADD_CASES],
    ids=[case[6] for case in ADD_CASES],
)
def test_add_open_time(
    text: str,
    tz: ZoneInfo,
    holidays: str,
    start: tuple[int, ...],
    minutes: int,
    expected: datetime,
) -> None:
    schedule = hours(text, tz, holidays)
    begin = local(tz, *start)
    due = schedule.add(begin, timedelta(minutes=minutes))
    assert due == expected
    assert schedule.open_time(begin, due) == timedelta(minutes=minutes)


ELAPSED_CASES = [
    # (schedule, tz, since (local), until (local), open hours, why)
    (WEEK, BERLIN, (2026, 1, 5, 0, 0), (2026, 1, 12, 0, 0), 49, "one week"),
    (WEEK, BERLIN, (2026, 3, 28, 0, 0), (2026, 3, 31, 0, 0), 13, "spring-forward weekend"),
    ("sun 00:00-24:00", BERLIN, (2026, 3, 29, 0, 0), (2026, 3, 30, 0, 0), 23, "23-hour Sunday"),
    ("sun 00:00-24:00", BERLIN, (2026, 10, 25, 0, 0), (2026, 10, 26, 0, 0), 25, "25-hour Sunday"),
    ("sun 00:00-24:00", NEW_YORK, (2026, 11, 1, 0, 0), (2026, 11, 2, 0, 0), 25, "NY 25 hours"),
    ("sun 02:00-04:00", BERLIN, (2026, 3, 29, 0, 0), (2026, 3, 30, 0, 0), 1, "02:00 is 03:00"),
    (WEEK, BERLIN, (2026, 1, 9, 18, 0), (2026, 1, 12, 9, 0), 4, "Saturday only"),
    (WEEK, BERLIN, (2026, 1, 12, 12, 0), (2026, 1, 12, 11, 0), 0, "until before since"),
]


@pytest.mark.parametrize(
    ("text", "tz", "since", "until", "open_hours"),
    [case[:5] for case in ELAPSED_CASES],
    ids=[case[5] for case in ELAPSED_CASES],
)
def test_open_time_between(
    text: str, tz: ZoneInfo, since: tuple[int, ...], until: tuple[int, ...], open_hours: int
) -> None:
    schedule = hours(text, tz)
    assert schedule.open_time(local(tz, *since), local(tz, *until)) == timedelta(hours=open_hours)


OPEN_CASES = [
    # (local time, open?, next opening (UTC), why)
    ((2026, 1, 9, 17, 59), True, utc(2026, 1, 9, 16, 59), "open: itself"),
    ((2026, 1, 9, 18, 0), False, utc(2026, 1, 10, 9, 0), "closing time is closed"),
    ((2026, 1, 10, 14, 0), False, utc(2026, 1, 12, 8, 0), "Saturday afternoon"),
    ((2026, 1, 11, 12, 0), False, utc(2026, 1, 12, 8, 0), "Sunday"),
    ((2026, 12, 24, 20, 0), False, utc(2026, 12, 28, 8, 0), "holidays and a weekend"),
    ((2026, 3, 28, 15, 0), False, utc(2026, 3, 30, 7, 0), "opens in summer time"),
]


@pytest.mark.parametrize(
    ("at", "is_open", "opens"),
    [case[:3] for case in OPEN_CASES],
    ids=[case[3] for case in OPEN_CASES],
)
def test_is_open_and_next_open(at: tuple[int, ...], is_open: bool, opens: datetime) -> None:
    schedule = hours(WEEK, BERLIN, "2026-12-25, 2026-12-26")
    moment = local(BERLIN, *at)
    assert schedule.is_open(moment) is is_open
    assert schedule.next_open(moment) == opens


def test_always_open_is_wall_clock() -> None:
    start = utc(2026, 3, 29, 0, 30)
    assert ALWAYS_OPEN.is_open(start)
    assert ALWAYS_OPEN.next_open(start) == start
    assert ALWAYS_OPEN.add(start, timedelta(minutes=30)) == start + timedelta(minutes=30)
    assert ALWAYS_OPEN.open_time(start, start + timedelta(days=3)) == timedelta(days=3)


def test_holidays_alone_close_only_those_days() -> None:
    schedule = hours("", BERLIN, "2026-01-01")
    assert not schedule.is_open(local(BERLIN, 2026, 1, 1, 12))
    assert schedule.next_open(local(BERLIN, 2026, 1, 1, 12)) == utc(2026, 1, 1, 23, 0)
    assert schedule.open_time(utc(2025, 12, 31, 0), utc(2026, 1, 2, 23)) == timedelta(hours=47)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        hours(WEEK, BERLIN).is_open(datetime(2026, 1, 5, 10))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BUSINESS_HOURS": "mon-fry 09:00-18:00"}, "BUSINESS_HOURS: 'fry' is not a day"),
        ({"BUSINESS_HOURS": "mon-fri 9-18"}, "BUSINESS_HOURS: '9-18' is not a time range"),
        (
            {"BUSINESS_HOURS": "mon-fri 09:00-25:00"},
            "BUSINESS_HOURS: '09:00-25:00' is not a time range",
        ),
        ({"BUSINESS_HOURS": "mon-fri"}, "BUSINESS_HOURS: 'mon-fri' needs days and hours"),
        ({"BUSINESS_HOURS": "sat 10:00-10:00"}, "BUSINESS_HOURS: '10:00-10:00' opens and closes"),
        ({"HOLIDAYS": "2026-12-25,2026-13-01"}, "HOLIDAYS: '2026-13-01' is not a date"),
    ],
)
def test_invalid_settings_name_the_bad_part(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env, env_file=None)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_settings_build_the_schedule_in_the_time_zone() -> None:
    unset = load_settings({"BUSINESS_HOURS": " "}, env_file=None)
    assert unset.hours is ALWAYS_OPEN
    settings_ = load_settings(
        {"BUSINESS_HOURS": "Mon-Fri 09:00-12:00, 13:00-17:00", "TIMEZONE": "America/New_York",
         "HOLIDAYS": "2026-07-03"},
        env_file=None,
    )  # fmt: skip
    assert settings_.hours.tz == NEW_YORK
    assert settings_.hours.holidays == {date(2026, 7, 3)}
    assert not settings_.hours.is_open(local(NEW_YORK, 2026, 7, 6, 12, 30))  # lunch
    assert settings_.hours.is_open(local(NEW_YORK, 2026, 7, 6, 13, 0))


# -- properties ---------------------------------------------------------------------------
SCHEDULES = st.sampled_from(
    [
        hours(WEEK, BERLIN, "2026-03-30"),
        hours(WEEK, NEW_YORK),
        hours("sun 01:00-04:00; fri 22:00-02:00", BERLIN, "2026-10-24"),
        hours("mon-sun 00:00-24:00", NEW_YORK, "2026-11-01"),
        ALWAYS_OPEN,
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(2026, 2, 20), max_value=datetime(2026, 11, 20), timezones=st.just(UTC)
)
AMOUNTS = st.integers(min_value=0, max_value=60 * 24 * 20).map(lambda m: timedelta(minutes=m))


@settings(max_examples=150, deadline=None)
@given(SCHEDULES, INSTANTS, AMOUNTS)
def test_open_time_undoes_add(schedule: BusinessHours, at: datetime, amount: timedelta) -> None:
    due = schedule.add(at, amount)
    assert schedule.open_time(at, due) == amount
    if amount:
        assert schedule.is_open(due - timedelta(microseconds=1))  # it ends in open time


@settings(max_examples=150, deadline=None)
@given(SCHEDULES, INSTANTS, INSTANTS, INSTANTS)
def test_open_time_adds_up(
    schedule: BusinessHours, first: datetime, second: datetime, third: datetime
) -> None:
    a, b, c = sorted((first, second, third))
    assert schedule.open_time(a, c) == schedule.open_time(a, b) + schedule.open_time(b, c)
    assert schedule.open_time(a, c) <= c - a


@settings(max_examples=150, deadline=None)
@given(SCHEDULES, INSTANTS)
def test_next_open_is_open_and_nothing_opens_before(schedule: BusinessHours, at: datetime) -> None:
    opens = schedule.next_open(at)
    assert opens >= at and schedule.is_open(opens)
    assert schedule.open_time(at, opens) == timedelta(0)
