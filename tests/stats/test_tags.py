"""The tag filter of the stats (`/api/stats?tag=`, `/social-stats tag:`): only the
conversations routing rules gave that tag, on SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.db import Database
from storage.inbound import Routed
from storage.stats import compute, oldest_unanswered
from tests.stats.test_stats import EMPTY, figures, flat


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


async def build(db: Database) -> None:
    from tests.stats.builder import Builder

    b = Builder(db)
    await b.customer("a", at(10), routed=Routed("sales", "urgent", ["refund"]))
    await b.reply("a", at(10, 5))  # 300 s
    await b.customer("a", at(10, 30))  # a later message: still tagged
    await b.customer("b", at(10, 10), routed=Routed(None, None, ["refund", "vip"]))  # waiting
    await b.customer("c", at(10, 20))  # no tags
    await b.reply("c", at(10, 22))  # 120 s
    await b.customer("d", at(10, 40), network="whatsapp", routed=Routed(tags=["vip", "refunds"]))
    await b.reply("d", at(10, 41))  # 60 s


async def test_stats_filter_by_tag(db: Database) -> None:
    await build(db)

    refund = await compute(db, at(10), at(11), now=at(12), tag="refund")
    # a (two messages, answered turn of 300 s, then waiting since 10:30) and b (waiting
    # since 10:10); not d, whose "refunds" is another tag
    assert flat(refund) == figures(
        received=3,
        conversations=2,
        turns=3,
        answered_turns=1,
        response_rate=1 / 3,
        avg_response_seconds=300.0,
        median_response_seconds=300.0,
        p90_response_seconds=300.0,
        avg_first_response_seconds=300.0,
        unanswered=2,
        oldest_unanswered_seconds=3000.0,  # b, since 10:10, as of until (11:00)
    )
    assert set(refund["by_team"]) == {"sales", "unassigned"}
    assert refund["by_network"].keys() == {"telegram"}

    vip = await compute(db, at(10), at(11), now=at(12), tag="vip")
    assert (vip["received"], vip["turns"], vip["answered_turns"], vip["unanswered"]) == (2, 2, 1, 1)
    assert vip["by_network"]["whatsapp"]["avg_response_seconds"] == 60.0

    both = await compute(db, at(10), at(11), now=at(12), tag="refund", team="sales")
    assert (both["received"], both["turns"], both["unanswered"]) == (2, 2, 1)

    nothing = await compute(db, at(10), at(11), now=at(12), tag="ref")  # no partial matches
    assert flat(nothing) == EMPTY
    everything = await compute(db, at(10), at(11), now=at(12))
    assert (everything["received"], everything["turns"]) == (5, 5)

    waiting = await oldest_unanswered(db, at(12), tag="refund")
    assert [(w["conversation_id"], w["waiting_seconds"]) for w in waiting] == [
        (2, 6600.0),
        (1, 5400.0),
    ]
    assert await oldest_unanswered(db, at(12), tag="vip") == [waiting[0]]


async def test_routing_runs_once_per_new_conversation_of_a_batch(db: Database) -> None:
    from sqlmodel import col, select

    from storage.models import Conversation, Turn
    from storage.repo import NewCustomerMessage, Repository

    def message(key: str, n: int, text: str) -> NewCustomerMessage:
        return NewCustomerMessage(
            network="telegram",
            conversation_key=key,
            external_id=f"{key}:{n}",
            author_id=key,
            author_name=key,
            text=text,
            sent_at=at(10, n),
            received_at=at(10, n),
        )

    asked: list[str] = []

    def route(item: NewCustomerMessage) -> Routed | None:
        asked.append(item.external_id)
        return Routed("sales", "urgent", ["refund"]) if "refund" in item.text else None

    repo = Repository(db)
    await repo.store_customer_messages([message("old", 0, "hello")])  # before any rules
    batch = [
        message("old", 1, "refund please"),  # an existing conversation: not routed again
        message("a", 2, "refund please"),
        message("a", 3, "hello again"),  # the same new conversation: routed by its first
        message("b", 4, "hello"),
    ]
    stored = await repo.store_customer_messages(batch, route)

    assert asked == ["a:2", "b:4"]
    assert [s.new_conversation for s in stored] == [False, True, False, True]
    async with db.read() as session:
        rows = (await session.execute(select(Conversation).order_by(col(Conversation.id)))).all()
        found = [(c.external_key, c.team, c.priority, c.tags) for (c,) in rows]
        turns = (await session.execute(select(Turn.conversation_id, Turn.team))).all()
    assert found == [
        ("old", None, None, []),
        ("a", "sales", "urgent", ["refund"]),
        ("b", None, None, []),
    ]
    assert sorted(turns) == [(1, None), (2, "sales"), (3, None)]
