"""Ratings in SQL and in the figures, on SQLite and PostgreSQL: one question per
conversation per 24 hours, one rating per question, and `csat_count` / `csat_avg` by
network and by the team that was asked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage.csat import CsatStore
from storage.db import Database
from storage.stats import compute
from tests.stats.builder import Builder


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


async def asked(
    db: Database, b: Builder, key: str, when: datetime, network: str = "telegram"
) -> int:
    """A conversation resolved at `when` whose question was claimed and sent then."""
    await b.customer(key, when - timedelta(minutes=5), network=network)
    await b.resolve(key, when)
    survey = await CsatStore(db).claim(b.ids[key], when)
    assert survey is not None
    await CsatStore(db).mark_sent(survey, f"q-{key}", when)
    return survey


async def test_one_question_per_conversation_per_day(db: Database) -> None:
    b = Builder(db)
    store = CsatStore(db)
    first = await asked(db, b, "a", at(10))
    assert await store.claim(b.ids["a"], at(10, 30)) is None  # resolved again: not asked
    two_claims = await asyncio.gather(
        *(store.claim(b.ids["a"], at(10) + timedelta(hours=25)) for _ in range(4))
    )
    assert len([c for c in two_claims if c is not None]) == 1  # racing processes: one wins
    assert [s.id for s in await store.all(b.ids["a"])][0] == first
    await b.customer("b", at(11))  # open, never resolved: never asked
    assert await store.claim(b.ids["b"], at(11, 5)) is None


async def test_a_second_tap_counts_nothing_and_the_figures_split(db: Database) -> None:
    b = Builder(db)
    store = CsatStore(db)
    s1 = await asked(db, b, "a", at(10))
    s2 = await asked(db, b, "w", at(10), network="whatsapp")
    await b.set_team("w", "sales")
    s3 = await asked(db, b, "late", at(10))

    first = await store.record(s1, "telegram", "a", 4, at(10, 1), "tap-1")
    again = await store.record(s1, "telegram", "a", 1, at(10, 2), "tap-2")
    assert first is not None and first.new and first.score == 4
    assert again is not None and not again.new and again.score == 4  # the first answer stays
    await store.record(s2, "whatsapp", "w", 5, at(11), "wamid.1")
    await store.record(s3, "telegram", "late", 1, at(13, 30), "tap-3")  # after the window
    assert await store.record(s1, "telegram", "w", 3, at(11), "forged") is None  # not its chat
    assert await store.record(999, "telegram", "a", 3, at(11), "unknown") is None

    figures = await compute(db, at(9), at(13), now=at(14))
    assert (figures["csat_count"], figures["csat_avg"]) == (2, 4.5)
    assert figures["by_network"]["telegram"]["csat_count"] == 1
    assert figures["by_network"]["telegram"]["csat_avg"] == 4.0
    assert figures["by_network"]["whatsapp"]["csat_avg"] == 5.0
    # the team asked: whatsapp's question went out before its handoff to sales
    assert figures["by_team"]["unassigned"]["csat_count"] == 2
    sales = await compute(db, at(9), at(13), now=at(14), team="unassigned", network="whatsapp")
    assert (sales["csat_count"], sales["csat_avg"]) == (1, 5.0)
    nothing = await compute(db, at(9), at(13), now=at(14), team="sales")
    assert (nothing["csat_count"], nothing["csat_avg"]) == (0, None)
    later = await compute(db, at(13), at(14), now=at(14))
    assert (later["csat_count"], later["csat_avg"]) == (1, 1.0)


async def test_the_team_that_was_asked_gets_the_rating(db: Database) -> None:
    b = Builder(db)
    await b.customer("s", at(9))
    await b.set_team("s", "sales")
    await b.resolve("s", at(10))
    store = CsatStore(db)
    survey = await store.claim(b.ids["s"], at(10))
    assert survey is not None
    await store.record(survey, "telegram", "s", 2, at(10, 5), "tap")
    figures = await compute(db, at(9), at(11), now=at(11))
    assert figures["by_team"]["sales"]["csat_avg"] == 2.0


async def test_comments_attach_once(db: Database) -> None:
    b = Builder(db)
    store = CsatStore(db)
    survey = await asked(db, b, "a", at(10))
    await store.record(survey, "telegram", "a", 5, at(10, 1), "tap")
    [open_survey] = (await store.open_surveys("telegram", ["a", "zzz"], at(10, 2))).values()
    assert open_survey.rating_id is not None and open_survey.comment_message_id is None
    assert await store.attach_comment(open_survey.rating_id, "m-9", "great", at(10, 2))
    assert await store.attach_comment(open_survey.rating_id, "m-9", "great", at(10, 2))  # again
    assert not await store.attach_comment(open_survey.rating_id, "m-10", "more", at(10, 3))
    [rating] = await store.ratings(b.ids["a"])
    assert (rating.comment, rating.comment_message_id) == ("great", "m-9")
    # a day later the question is no longer open
    assert await store.open_surveys("telegram", ["a"], at(10) + timedelta(hours=25)) == {}
