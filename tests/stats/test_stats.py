"""Exact figures of storage.stats on conversations built through the real Repository.

Every test runs on SQLite and on PostgreSQL (the `db` fixture); every expected
number below is worked out by hand in the comments.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.stats import compute, oldest_unanswered, percentile_cont, percentile_of_runs
from tests.stats.builder import INBOX, Builder


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, tzinfo=UTC)


EMPTY: dict[str, Any] = {
    "received": 0,
    "conversations": 0,
    "turns": 0,
    "answered_turns": 0,
    "response_rate": None,
    "avg_response_seconds": None,
    "avg_business_response_seconds": None,
    "median_response_seconds": None,
    "p90_response_seconds": None,
    "avg_first_response_seconds": None,
    "unanswered": 0,
    "oldest_unanswered_seconds": None,
    "moments": 0,
    "csat_count": 0,
    "csat_avg": None,
}


def figures(**values: Any) -> dict[str, Any]:
    """Without BUSINESS_HOURS the business-hours average is the wall-clock one."""
    unknown = set(values) - set(EMPTY)
    assert not unknown, unknown
    business = values.get("avg_response_seconds")
    return {**EMPTY, "avg_business_response_seconds": business, **values}


def flat(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key in EMPTY}


async def test_multi_message_turns_notes_and_failed_deliveries(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.customer("a", at(10, 1))  # same turn: it starts at 10:00
    await b.reply("a", at(10, 2), outcome="note")  # a note answers nothing
    await b.reply("a", at(10, 3), outcome="failed")  # nor does a failed delivery
    await b.reply("a", at(10, 5))  # turn 1: 300 s, the first response
    await b.reply("a", at(10, 7))  # a second reply opens no turn
    await b.customer("a", at(11, 0))
    await b.reply("a", at(11, 2))  # turn 2: 120 s
    await b.customer("a", at(12, 0))  # turn 3: waiting
    await b.reply("a", at(12, 30), outcome="note")

    result = await compute(db, at(10), at(13), now=at(14))

    # median of [120, 300] = 210; p90 = 120 + 0.9 * 180 = 282; waiting since 12:00 -> 3600 s
    expected = figures(
        received=4,  # 10:00, 10:01, 11:00, 12:00
        conversations=1,
        turns=3,
        answered_turns=2,
        response_rate=2 / 3,
        avg_response_seconds=210.0,
        median_response_seconds=210.0,
        p90_response_seconds=282.0,
        avg_first_response_seconds=300.0,
        unanswered=1,
        oldest_unanswered_seconds=3600.0,
    )
    assert result == {
        "since": "2026-03-02T10:00:00+00:00",
        "until": "2026-03-02T13:00:00+00:00",
        **expected,
        "by_network": {"telegram": expected},
        "by_team": {"unassigned": expected},
    }


async def test_reply_before_any_customer_message_answers_nothing(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.reply("a", at(9, 58))  # its Slack ts precedes the customer's message
    await b.customer("a", at(10, 10))
    await b.reply("a", at(10, 20))  # answers the turn started at 10:00: 1200 s

    result = await compute(db, at(9), at(11), now=at(11))

    assert flat(result) == figures(
        received=2,
        conversations=1,
        turns=1,
        answered_turns=1,
        response_rate=1.0,
        avg_response_seconds=1200.0,
        median_response_seconds=1200.0,
        p90_response_seconds=1200.0,
        avg_first_response_seconds=1200.0,
    )


async def test_resolved_while_unanswered(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.resolve("a", at(10, 30))

    after = await compute(db, at(10), at(11), now=at(12))
    # Not answered, but resolved by 11:00: nothing waits.
    assert flat(after) == figures(
        received=1, conversations=1, turns=1, answered_turns=0, response_rate=0.0
    )

    before = await compute(db, at(10), at(10, 20), now=at(12))
    # As of 10:20 it was still open and waiting for 20 minutes.
    assert flat(before) == figures(
        received=1,
        conversations=1,
        turns=1,
        response_rate=0.0,
        unanswered=1,
        oldest_unanswered_seconds=1200.0,
    )


async def test_handoff_mid_turn_belongs_to_the_team_that_answered(db: Database) -> None:
    b = Builder(db)
    await b.customer("h", at(10, 0))
    await b.set_team("h", "support")
    await b.set_team("h", "sales")  # handed off before the answer
    await b.reply("h", at(10, 20))  # sales answers: 1200 s
    await b.set_team("h", "support")  # handed back after the answer

    await b.customer("u", at(10, 0))
    await b.set_team("u", "support")
    await b.set_team("u", "sales")  # nobody answered yet: it waits for sales

    await b.customer("s", at(10, 30))
    await b.set_team("s", "support")
    await b.reply("s", at(10, 35))  # support: 300 s

    result = await compute(db, at(10), at(11), now=at(11))

    # Messages follow the conversation's current team (h and s are support's now),
    # turns the team that answered them (h: sales) or the current one (u: sales).
    sales = figures(
        received=1,
        conversations=1,
        turns=2,
        answered_turns=1,
        response_rate=0.5,
        avg_response_seconds=1200.0,
        median_response_seconds=1200.0,
        p90_response_seconds=1200.0,
        avg_first_response_seconds=1200.0,
        unanswered=1,
        oldest_unanswered_seconds=3600.0,
    )
    support = figures(
        received=2,
        conversations=2,
        turns=1,
        answered_turns=1,
        response_rate=1.0,
        avg_response_seconds=300.0,
        median_response_seconds=300.0,
        p90_response_seconds=300.0,
        avg_first_response_seconds=300.0,
    )
    # all: durations [300, 1200] -> median 750, p90 = 300 + 0.9 * 900 = 1110
    assert flat(result) == figures(
        received=3,
        conversations=3,
        turns=3,
        answered_turns=2,
        response_rate=2 / 3,
        avg_response_seconds=750.0,
        median_response_seconds=750.0,
        p90_response_seconds=1110.0,
        avg_first_response_seconds=750.0,
        unanswered=1,
        oldest_unanswered_seconds=3600.0,
    )
    assert result["by_team"] == {"sales": sales, "support": support}

    only_sales = await compute(db, at(10), at(11), team="sales", now=at(11))
    assert flat(only_sales) == sales
    assert only_sales["by_team"] == {"sales": sales}
    assert only_sales["by_network"] == {"telegram": sales}


async def test_windows_that_cut_a_turn(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.customer("a", at(10, 6))
    await b.reply("a", at(10, 20))  # 1200 s

    head = await compute(db, at(10), at(10, 10), now=at(12))
    # Started inside, answered after the window: a turn, unanswered as of 10:10.
    assert flat(head) == figures(
        received=2,
        conversations=1,
        turns=1,
        response_rate=0.0,
        avg_response_seconds=None,
        unanswered=1,
        oldest_unanswered_seconds=600.0,
    )

    tail = await compute(db, at(10, 5), at(11), now=at(12))
    # The turn started before the window: its 10:06 message counts, the turn does not.
    assert flat(tail) == figures(received=1, conversations=1)

    whole = await compute(db, at(10), at(11), now=at(12))
    assert flat(whole) == figures(
        received=2,
        conversations=1,
        turns=1,
        answered_turns=1,
        response_rate=1.0,
        avg_response_seconds=1200.0,
        median_response_seconds=1200.0,
        p90_response_seconds=1200.0,
        avg_first_response_seconds=1200.0,
    )


async def test_late_message_written_before_the_answer_joins_that_turn(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.reply("a", at(10, 10))  # 600 s
    await b.customer("a", at(10, 8), arrived=at(10, 12))  # written before the answer
    await b.customer("a", at(10, 30), arrived=at(10, 15))  # future network time: capped

    result = await compute(db, at(10), at(11), now=at(11))

    # The capped message (10:15) opens turn 2, still waiting at 11:00: 2700 s.
    assert flat(result) == figures(
        received=3,
        conversations=1,
        turns=2,
        answered_turns=1,
        response_rate=0.5,
        avg_response_seconds=600.0,
        median_response_seconds=600.0,
        p90_response_seconds=600.0,
        avg_first_response_seconds=600.0,
        unanswered=1,
        oldest_unanswered_seconds=2700.0,
    )


async def test_an_earlier_turn_that_lost_its_answer_does_not_wait(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.reply("a", at(10, 10))
    await b.customer("a", at(10, 20))
    await b.reply("a", at(10, 25))
    async with db.session() as session:  # the network reports the 10:10 reply failed
        await session.execute(
            text(
                "UPDATE turn SET answered_at = NULL, reply_id = NULL, response_seconds = NULL"
                " WHERE started_at = (SELECT min(started_at) FROM turn)"
            )
        )

    result = await compute(db, at(10), at(11), now=at(11))

    # The latest message (10:20) was answered at 10:25: nothing waits.
    assert flat(result) == figures(
        received=2,
        conversations=1,
        turns=2,
        answered_turns=1,
        response_rate=0.5,
        avg_response_seconds=300.0,
        median_response_seconds=300.0,
        p90_response_seconds=300.0,
    )
    assert await oldest_unanswered(db, at(11)) == []


async def _five_first_turns(b: Builder) -> None:
    durations = [
        ("t1", "telegram", 60),
        ("w1", "whatsapp", 120),
        ("t2", "telegram", 300),
        ("w2", "whatsapp", 600),
        ("t3", "telegram", 3600),
    ]
    for index, (key, network, seconds) in enumerate(durations):
        start = at(10, index)
        await b.customer(key, start, network=network)
        await b.reply(key, start + timedelta(seconds=seconds))


async def test_percentiles_by_network(db: Database) -> None:
    b = Builder(db)
    await _five_first_turns(b)
    await b.customer("t1", at(12, 0), network="telegram")
    await b.reply("t1", at(12, 0, 30))  # a later turn of t1: 30 s, not a first response

    result = await compute(db, at(10), at(13), now=at(13))

    # all: [30, 60, 120, 300, 600, 3600], sum 4710
    #   median: position 2.5 -> (120 + 300) / 2 = 210; p90: position 4.5 -> 600 + 0.5 * 3000
    # first responses: [60, 120, 300, 600, 3600] -> 4680 / 5 = 936
    assert flat(result) == figures(
        received=6,
        conversations=5,
        turns=6,
        answered_turns=6,
        response_rate=1.0,
        avg_response_seconds=785.0,
        median_response_seconds=210.0,
        p90_response_seconds=2100.0,
        avg_first_response_seconds=936.0,
    )
    # telegram: [30, 60, 300, 3600] median 180; p90 position 2.7 -> 300 + 0.7 * 3300 = 2610
    #   first: [60, 300, 3600] -> 1320
    # whatsapp: [120, 600] median 360; p90 position 0.9 -> 120 + 0.9 * 480 = 552
    telegram = figures(
        received=4,
        conversations=3,
        turns=4,
        answered_turns=4,
        response_rate=1.0,
        avg_response_seconds=997.5,
        median_response_seconds=180.0,
        p90_response_seconds=2610.0,
        avg_first_response_seconds=1320.0,
    )
    whatsapp = figures(
        received=2,
        conversations=2,
        turns=2,
        answered_turns=2,
        response_rate=1.0,
        avg_response_seconds=360.0,
        median_response_seconds=360.0,
        p90_response_seconds=552.0,
        avg_first_response_seconds=360.0,
    )
    assert result["by_network"] == {"telegram": telegram, "whatsapp": whatsapp}
    assert result["by_team"] == {"unassigned": flat(result)}

    only_whatsapp = await compute(db, at(10), at(13), network="whatsapp", now=at(13))
    assert flat(only_whatsapp) == whatsapp
    assert only_whatsapp["by_network"] == {"whatsapp": whatsapp}


async def test_percentiles_match_postgresql_percentile_cont(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("compares against PostgreSQL itself")
    b = Builder(db)
    seconds = [7.25, 13.0, 13.0, 41.5, 97.125, 180.0, 181.5, 602.0, 3599.75, 86400.0, 5.0]
    for index, value in enumerate(seconds):
        start = at(10) + timedelta(minutes=index)
        await b.customer(f"c{index}", start)
        await b.reply(f"c{index}", start + timedelta(seconds=value))
    later = at(10) + timedelta(days=2)  # every reply delivered by then
    result = await compute(db, at(10), later, now=later)
    async with db.session() as session:
        median, p90 = (
            await session.execute(
                text(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),"
                    " percentile_cont(0.9) WITHIN GROUP (ORDER BY s)"
                    " FROM unnest(CAST(:v AS float8[])) AS s"
                ),
                {"v": seconds},
            )
        ).one()
    ordered = sorted(seconds)
    assert (percentile_cont(ordered, 0.5), percentile_cont(ordered, 0.9)) == (median, p90)
    assert result["median_response_seconds"] == round(median, 3) == 97.125
    # position 9.0 -> the 10th smallest value
    assert result["p90_response_seconds"] == round(p90, 3) == 3599.75


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([42.0], 0.9, 42.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([1.0, 2.0, 4.0, 8.0], 0.5, 3.0),  # position 1.5
        ([1.0, 2.0, 4.0, 8.0], 0.9, 6.8),  # position 2.7 -> 4 + 0.7 * 4
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0], 0.9, 100.0),
        ([0.0, 100.0], 0.9, 90.0),
    ],
)
def test_percentile_cont_interpolation(
    values: list[float], fraction: float, expected: float | None
) -> None:
    result = percentile_cont(values, fraction)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-9)


def test_percentile_of_runs_equals_percentile_cont_of_the_merged_values() -> None:
    """Selection across sorted runs gives bit for bit what sorting everything gives,
    with ties, empty runs and single values (seeded, so every run tests the same)."""
    rng = random.Random(6)
    for _ in range(2000):
        runs = [
            sorted(
                float(rng.randint(0, 4)) if rng.random() < 0.5 else rng.uniform(0, 1e5)
                for _ in range(rng.randint(0, 9))
            )
            for _ in range(rng.randint(1, 6))
        ]
        merged = sorted(value for run in runs for value in run)
        for fraction in (0.0, 0.5, 0.9, 1.0, rng.random()):
            assert percentile_of_runs(runs, fraction) == percentile_cont(merged, fraction)


async def test_empty_window_gives_nulls_not_errors(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))
    await b.reply("a", at(10, 5))

    result = await compute(db, at(15), at(16), now=at(16))

    assert result == {
        "since": "2026-03-02T15:00:00+00:00",
        "until": "2026-03-02T16:00:00+00:00",
        **EMPTY,
        "by_network": {},
        "by_team": {},
    }


async def test_unassigned_team_and_filters(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))  # no team, waiting
    await b.customer("s", at(10, 30))
    await b.set_team("s", "support")  # waiting for support

    result = await compute(db, at(10), at(11), now=at(11))
    unassigned = figures(
        received=1,
        conversations=1,
        turns=1,
        response_rate=0.0,
        unanswered=1,
        oldest_unanswered_seconds=3600.0,
    )
    support = figures(
        received=1,
        conversations=1,
        turns=1,
        response_rate=0.0,
        unanswered=1,
        oldest_unanswered_seconds=1800.0,
    )
    assert result["by_team"] == {"support": support, "unassigned": unassigned}
    only_unassigned = await compute(db, at(10), at(11), team="unassigned", now=at(11))
    assert flat(only_unassigned) == unassigned
    nobody = await compute(db, at(10), at(11), team="sales", network="x", now=at(11))
    assert flat(nobody) == EMPTY


async def test_window_ending_in_the_future_counts_waits_until_now(db: Database) -> None:
    b = Builder(db)
    await b.customer("a", at(10, 0))

    result = await compute(db, at(10), at(23), now=at(10, 15))

    assert result["until"] == "2026-03-02T23:00:00+00:00"
    assert (result["unanswered"], result["oldest_unanswered_seconds"]) == (1, 900.0)


async def test_oldest_unanswered_lists_the_five_longest_waits(db: Database) -> None:
    b = Builder(db)
    for index in range(7):
        key = f"c{index}"
        await b.customer(
            key,
            at(9) + timedelta(minutes=10 * index),
            name=f"<Customer {index}>",
            network="whatsapp" if index == 3 else "telegram",
        )
    await b.reply("c1", at(10, 30))  # answered
    await b.resolve("c2", at(10, 0))  # resolved
    await b.set_team("c4", "sales")

    waits = await oldest_unanswered(db, at(11))

    assert [(w["conversation_id"], w["waiting_seconds"]) for w in waits] == [
        (b.ids["c0"], 7200.0),
        (b.ids["c3"], 5400.0),
        (b.ids["c4"], 4800.0),
        (b.ids["c5"], 4200.0),
        (b.ids["c6"], 3600.0),
    ]
    assert waits[2] == {
        "conversation_id": b.ids["c4"],
        "network": "telegram",
        "team": "sales",
        "channel": INBOX,
        "thread_ts": b.threads[b.ids["c4"]],
        "customer_name": "<Customer 4>",
        "waiting_seconds": 4800.0,
    }
    # As of 10:15 the reply to c1 had not been written yet.
    earlier = await oldest_unanswered(db, at(10, 15), limit=2)
    assert [w["conversation_id"] for w in earlier] == [b.ids["c0"], b.ids["c1"]]
    # c1 (answered only later) sorts between still unanswered ones; c2 was resolved
    earlier = await oldest_unanswered(db, at(10, 15), limit=3)
    assert [w["conversation_id"] for w in earlier] == [b.ids["c0"], b.ids["c1"], b.ids["c3"]]
    whatsapp = await oldest_unanswered(db, at(11), network="whatsapp")
    assert [w["conversation_id"] for w in whatsapp] == [b.ids["c3"]]
    sales = await oldest_unanswered(db, at(11), team="sales")
    assert [w["conversation_id"] for w in sales] == [b.ids["c4"]]


async def test_naive_or_reversed_windows_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await compute(db, datetime(2026, 3, 2), at(11))
    with pytest.raises(ValueError, match="before"):
        await compute(db, at(11), at(10))
