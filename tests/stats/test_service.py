"""bot.services.stats: windows (with DST), parsing, durations, Block Kit, and the reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.blocks.stats import humanize_seconds, stats_blocks, summary_blocks, thread_link
from bot.services.refusal import Refusal
from bot.services.stats import (
    StatsReport,
    SummaryReport,
    Window,
    day_window,
    parse_stats_command,
    period_window,
    stats_report,
    summary_report,
)
from storage.db import Database
from storage.stats import compute
from tests.stats.builder import Builder

BERLIN = ZoneInfo("Europe/Berlin")
NETWORKS = ["telegram", "whatsapp", "x"]
TEAMS = ["support", "sales"]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-3, "0 s"),
        (45, "45 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (240, "4 min"),
        (3599, "59 min"),
        (3600, "1 h 00 min"),
        (7500, "2 h 05 min"),
        (86399, "23 h 59 min"),
        (86400, "1 d 0 h"),
        (3 * 86400 + 4 * 3600 + 59 * 60, "3 d 4 h"),
    ],
)
def test_humanize_seconds(seconds: float, text: str) -> None:
    assert humanize_seconds(seconds) == text


@pytest.mark.parametrize(
    ("day", "zone", "since", "until"),
    [
        (date(2026, 3, 2), "UTC", utc(2026, 3, 2), utc(2026, 3, 3)),
        # Berlin springs forward at 02:00 on 29 March: a 23-hour day
        (date(2026, 3, 29), "Europe/Berlin", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        # and falls back at 03:00 on 25 October: a 25-hour day
        (date(2026, 10, 25), "Europe/Berlin", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # Santiago springs forward at midnight: the day begins at 01:00 -03
        (date(2026, 9, 6), "America/Santiago", utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)),
        # and falls back at midnight: Saturday has 25 hours, Sunday 24
        (date(2026, 4, 4), "America/Santiago", utc(2026, 4, 4, 3), utc(2026, 4, 5, 4)),
        (date(2026, 4, 5), "America/Santiago", utc(2026, 4, 5, 4), utc(2026, 4, 6, 4)),
    ],
)
def test_day_window(day: date, zone: str, since: datetime, until: datetime) -> None:
    window = day_window(day, ZoneInfo(zone))
    assert (window.since, window.until) == (since, until)


@pytest.mark.parametrize(
    ("period", "now", "zone", "since", "until"),
    [
        ("today", utc(2026, 3, 29, 12), "Europe/Berlin", utc(2026, 3, 28, 23), None),
        (
            "yesterday",
            utc(2026, 3, 30, 8),
            "Europe/Berlin",
            utc(2026, 3, 28, 23),
            utc(2026, 3, 29, 22),
        ),
        (
            "yesterday",
            utc(2026, 10, 26, 8),
            "Europe/Berlin",
            utc(2026, 10, 24, 22),
            utc(2026, 10, 25, 23),
        ),
        # 7 local days including today (1 April, CEST): from 26 March, still CET
        ("7d", utc(2026, 4, 1, 10), "Europe/Berlin", utc(2026, 3, 25, 23), None),
        ("30d", utc(2026, 3, 2, 12), "UTC", utc(2026, 2, 1), None),
        # 19:00 on 1 March in Los Angeles: "today" is still 1 March there
        ("today", utc(2026, 3, 2, 3), "America/Los_Angeles", utc(2026, 3, 1, 8), None),
        # 00:30 on 30 March in Berlin: yesterday is the 23-hour DST day
        (
            "yesterday",
            utc(2026, 3, 29, 22, 30),
            "Europe/Berlin",
            utc(2026, 3, 28, 23),
            utc(2026, 3, 29, 22),
        ),
    ],
)
def test_period_window(
    period: str, now: datetime, zone: str, since: datetime, until: datetime | None
) -> None:
    window = period_window(period, now, ZoneInfo(zone))
    assert (window.since, window.until) == (since, until or now)


NOW = utc(2026, 3, 2, 12)


@pytest.mark.parametrize(
    ("text", "period", "network", "team"),
    [
        ("", "today", None, None),
        ("   ", "today", None, None),
        ("yesterday", "yesterday", None, None),
        ("7d telegram sales", "7d", "telegram", "sales"),
        ("Sales 30D", "30d", None, "sales"),
        ("whatsapp  yesterday", "yesterday", "whatsapp", None),
        ("unassigned", "today", None, "unassigned"),
        ("support x", "today", "x", "support"),
    ],
)
def test_parse_stats_command(text: str, period: str, network: str | None, team: str | None) -> None:
    request = parse_stats_command(text, now=NOW, tz=ZoneInfo("UTC"), networks=NETWORKS, teams=TEAMS)
    assert (request.period, request.network, request.team) == (period, network, team)
    assert request.window == period_window(period, NOW, ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "week",
            "I don't know `week`. Usage: `/social-stats [today|yesterday|7d|30d] "
            "[network] [team] [tag:NAME]`, in any order. Networks: telegram, whatsapp, x. "
            "Teams: sales, support, unassigned.",
        ),
        ("7d 30d", "Give at most one period (got `7d` and `30d`)."),
        ("telegram x", "Give at most one network (got `telegram` and `x`)."),
        ("<!channel>", "I don't know `&lt;!channel&gt;`."),
        ("tag:refund tag:vip", "Give at most one tag (got `tag:refund` and `tag:vip`)."),
        ("tag:", "I don't know `tag:`."),
        ("tag:<b>", "`tag:&lt;b&gt;` is no tag: a tag is at most 64 lower-case letters"),
    ],
)
def test_parse_stats_command_refuses_unknown_words(text: str, message: str) -> None:
    with pytest.raises(Refusal) as raised:
        parse_stats_command(text, now=NOW, tz=ZoneInfo("UTC"), networks=NETWORKS, teams=TEAMS)
    assert raised.value.sentence.startswith(message)


def test_parse_stats_command_reads_a_tag() -> None:
    request = parse_stats_command(
        "7d TAG:Refund sales", now=NOW, tz=ZoneInfo("UTC"), networks=NETWORKS, teams=TEAMS
    )
    assert (request.period, request.team, request.tag) == ("7d", "sales", "refund")
    plain = parse_stats_command("", now=NOW, tz=ZoneInfo("UTC"), networks=NETWORKS, teams=TEAMS)
    assert plain.tag is None


def test_thread_links() -> None:
    assert thread_link("C0INBOX01", "1700000000.000100") == (
        "https://slack.com/app_redirect?channel=C0INBOX01&message_ts=1700000000.000100"
    )
    assert thread_link("C0INBOX01", "1700000000.000100", "https://acme.slack.com/archives/") == (
        "https://acme.slack.com/archives/C0INBOX01/p1700000000000100"
    )


def _figures(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "received": 12,
        "conversations": 5,
        "turns": 8,
        "answered_turns": 6,
        "response_rate": 0.75,
        "avg_response_seconds": 7500.0,
        "median_response_seconds": 240.0,
        "p90_response_seconds": 3 * 86400 + 4 * 3600,
        "avg_first_response_seconds": 45.0,
        "unanswered": 2,
        "oldest_unanswered_seconds": 5400.0,
    }
    base.update(values)
    return base


OLDEST = [
    {
        "conversation_id": 7,
        "network": "telegram",
        "team": "unassigned",
        "channel": "C0INBOX01",
        "thread_ts": "1700000000.000100",
        "customer_name": "<!channel> & |Bob|",
        "waiting_seconds": 5400.0,
    },
    {
        "conversation_id": 9,
        "network": "x",
        "team": "sales",
        "channel": None,
        "thread_ts": None,
        "customer_name": "Eve",
        "waiting_seconds": 600.0,
    },
]


def test_stats_blocks() -> None:
    figures = {
        **_figures(),
        "by_network": {"telegram": _figures(), "x": _figures(response_rate=None)},
        "by_team": {"<b>": _figures(unanswered=0)},
    }
    window = Window(utc(2026, 3, 2), utc(2026, 3, 2, 12), "today so far", live=True)
    report = StatsReport(window, figures, OLDEST, utc(2026, 3, 2, 12), "telegram", None)

    blocks = stats_blocks(report, ZoneInfo("UTC"))

    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Social stats: today so far"},
    }
    assert blocks[1]["elements"][0]["text"] == (
        "2026-03-02 00:00 UTC → 2026-03-02 12:00 UTC · network: telegram"
    )
    assert [field["text"] for field in blocks[2]["fields"]] == [
        "*Received*\n12 messages",
        "*Conversations*\n5",
        "*Response rate*\n75% (6 of 8 turns)",
        "*Average response*\n2 h 05 min",
        "*Median / p90*\n4 min / 3 d 4 h",
        "*Average first response*\n45 s",
    ]
    assert blocks[3]["text"]["text"] == (
        "*Unanswered now*: 2, the oldest waiting 1 h 30 min\n"
        "• <https://slack.com/app_redirect?channel=C0INBOX01&message_ts=1700000000.000100"
        "|#7 &lt;!channel&gt; &amp; ¦Bob¦> (telegram, unassigned): waiting 1 h 30 min\n"
        "• #9 Eve (x, sales): waiting 10 min"
    )
    assert blocks[4] == {"type": "divider"}
    assert blocks[5]["text"]["text"] == (
        "*By network*\n"
        "*telegram*: 12 received · 75% answered · median 4 min · p90 3 d 4 h · 2 waiting\n"
        "*x*: 12 received · – answered · median 4 min · p90 3 d 4 h · 2 waiting"
    )
    assert blocks[6]["text"]["text"] == (
        "*By team*\n*&lt;b&gt;*: 12 received · 75% answered · median 4 min · p90 3 d 4 h"
        " · 0 waiting"
    )


def test_stats_blocks_for_a_past_window_say_when() -> None:
    window = Window(utc(2026, 3, 1), utc(2026, 3, 2), "yesterday")
    report = StatsReport(
        window,
        {**_figures(unanswered=0, oldest_unanswered_seconds=None), "by_network": {}, "by_team": {}},
        [],
        utc(2026, 3, 2),
        None,
        "sales",
    )
    blocks = stats_blocks(report, BERLIN, permalink_base="https://acme.slack.com/archives")
    assert blocks[1]["elements"][0]["text"] == (
        "2026-03-01 01:00 CET → 2026-03-02 01:00 CET · team: sales"
    )
    assert blocks[3]["text"]["text"] == "*Unanswered at 2026-03-02 01:00 CET*: 0"
    assert len(blocks) == 5  # no split without data


def test_summary_blocks_show_the_change_against_the_day_before() -> None:
    figures = {**_figures(), "by_network": {}, "by_team": {}}
    previous = {
        **_figures(
            received=20,
            conversations=5,
            response_rate=0.5,
            avg_response_seconds=7200.0,
            median_response_seconds=None,
            avg_first_response_seconds=105.0,
            unanswered=5,
        ),
        "by_network": {},
        "by_team": {},
    }
    report = SummaryReport(date(2026, 3, 29), figures, previous, OLDEST[:1], utc(2026, 3, 30, 7))

    blocks = summary_blocks(report, BERLIN)

    assert blocks[0]["text"]["text"] == "Daily summary: Sunday 29 March 2026"
    assert blocks[1]["elements"][0]["text"] == (
        "2026-03-29 00:00 CET → 2026-03-30 00:00 CEST · ▲▼ against the day before"
    )
    assert [field["text"] for field in blocks[2]["fields"]] == [
        "*Received*\n12 messages  ▼ 8",
        "*Conversations*\n5  (= the day before)",
        "*Response rate*\n75% (6 of 8 turns)  ▲ 25 pts",
        "*Average response*\n2 h 05 min  ▲ 5 min",
        "*Median / p90*\n4 min / 3 d 4 h",
        "*Average first response*\n45 s  ▼ 1 min",
    ]
    assert blocks[3]["text"]["text"] == (
        "*Unanswered at the end of the day*: 2, the oldest waiting 1 h 30 min  ▼ 3"
    )
    assert blocks[4]["text"]["text"].startswith("*Waiting now*: the oldest\n• <https://")

    quiet = SummaryReport(date(2026, 3, 29), figures, previous, [], utc(2026, 3, 30, 7))
    assert summary_blocks(quiet, BERLIN)[4]["text"]["text"] == "*Waiting now*: nobody :tada:"


async def test_dst_day_boundaries_in_the_figures(db: Database) -> None:
    """Messages one second either side of each local midnight of Berlin's DST days."""
    b = Builder(db)
    moments = [
        utc(2026, 3, 28, 22, 59, 59),  # 23:59:59 CET on the 28th: the day before
        utc(2026, 3, 28, 23),  # 00:00 CET on the 29th
        utc(2026, 3, 29, 21, 59, 59),  # 23:59:59 CEST on the 29th
        utc(2026, 3, 29, 22),  # 00:00 CEST on the 30th
        utc(2026, 10, 24, 21, 59, 59),
        utc(2026, 10, 24, 22),  # 00:00 CEST on 25 October
        utc(2026, 10, 25, 22, 59, 59),  # 23:59:59 CET on 25 October
        utc(2026, 10, 25, 23),
    ]
    for index, moment in enumerate(moments):
        await b.customer(f"c{index}", moment)
        await b.reply(f"c{index}", moment + timedelta(seconds=30 + index))

    spring = day_window(date(2026, 3, 29), BERLIN)
    autumn = day_window(date(2026, 10, 25), BERLIN)
    spring_figures = await compute(db, spring.since, spring.until, now=utc(2026, 12, 1))
    autumn_figures = await compute(db, autumn.since, autumn.until, now=utc(2026, 12, 1))

    # spring: c1 and c2 (c0 and c3 fall outside); c2's answer comes 32 s after 23:59:59,
    # after the window: only c1's 31 s counts. Autumn likewise: c5 and c6, and c5's 35 s.
    keys = ("received", "turns", "answered_turns", "avg_response_seconds", "unanswered")
    assert [spring_figures[key] for key in keys] == [2, 2, 1, 31.0, 1]
    assert [autumn_figures[key] for key in keys] == [2, 2, 1, 35.0, 1]


async def test_command_summary_and_api_agree(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", utc(2026, 3, 1, 9))  # Sunday 1 March, Berlin
    await b.reply("a", utc(2026, 3, 1, 9, 4))  # 240 s
    await b.customer("b", utc(2026, 3, 1, 10), name="Bob <b>")  # still waiting
    await b.customer("c", utc(2026, 2, 28, 10))  # the day before
    await b.reply("c", utc(2026, 2, 28, 10, 2))  # 120 s
    now = utc(2026, 3, 2, 8)  # 09:00 in Berlin on Monday

    request = parse_stats_command("yesterday", now=now, tz=BERLIN, networks=NETWORKS, teams=TEAMS)
    command = await stats_report(db, request, now)
    summary = await summary_report(db, date(2026, 3, 1), BERLIN, now)
    api = await compute(db, utc(2026, 2, 28, 23), utc(2026, 3, 1, 23), now=now)

    assert command.figures == summary.figures == api
    assert api["received"] == 2 and api["avg_response_seconds"] == 240.0
    assert api["unanswered"] == 1 and api["oldest_unanswered_seconds"] == 13 * 3600
    assert summary.previous["avg_response_seconds"] == 120.0
    assert [item["conversation_id"] for item in command.oldest] == [b.ids["b"]]
    assert summary.oldest[0]["waiting_seconds"] == 22 * 3600  # as of 08:00 UTC on the 2nd
    assert "Bob &lt;b&gt;" in summary_blocks(summary, BERLIN)[4]["text"]["text"]


def test_business_hours_response_time_beside_the_wall_clock_one_only_when_set() -> None:
    figures = {
        **_figures(avg_business_response_seconds=1800.0),
        "by_network": {},
        "by_team": {},
    }
    window = Window(utc(2026, 3, 2), utc(2026, 3, 2, 12), "today so far", live=True)
    report = StatsReport(window, figures, [], utc(2026, 3, 2, 12), None, None)
    summary = SummaryReport(date(2026, 3, 29), figures, figures, [], utc(2026, 3, 30, 7))
    average = "*Average response*\n2 h 05 min (30 min in business hours)"

    assert stats_blocks(report, BERLIN, business_hours=True)[2]["fields"][3]["text"] == average
    assert summary_blocks(summary, BERLIN, business_hours=True)[2]["fields"][3]["text"] == (
        average + "  (= the day before)"
    )
    assert stats_blocks(report, BERLIN)[2]["fields"][3]["text"] == (
        "*Average response*\n2 h 05 min"
    )


def test_summary_shows_each_networks_response_rate_against_the_target() -> None:
    figures = {
        **_figures(),
        "by_network": {
            "telegram": _figures(response_rate=0.95),
            "x": _figures(response_rate=0.5),
            "<meta>": _figures(response_rate=None),
        },
        "by_team": {},
    }
    summary = SummaryReport(date(2026, 3, 29), figures, figures, [], utc(2026, 3, 30, 7))

    blocks = summary_blocks(summary, BERLIN, rate_target=0.9)

    assert blocks[-1]["text"]["text"] == (
        "*Response rate against the target of 90%*\n"
        ":white_check_mark: *telegram*: 95%\n"
        ":x: *x*: 50%\n"
        ":grey_question: *&lt;meta&gt;*: –"
    )
    assert "target" not in str(summary_blocks(summary, BERLIN))
