"""Spike counts, spike rows and moment rows on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.moments import MomentStore, NewMoment
from storage.spikes import SpikeStore, Volume
from storage.stats import compute
from tests.moments.conftest import Messages

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


async def test_volume_counts_the_window_and_the_same_window_on_seven_days(db: Database) -> None:
    messages = Messages(db)
    inside = [NOW, NOW - MINUTE, NOW - WINDOW]  # [now - window, now]
    for at in inside:
        await messages.add(at)
    await messages.add(NOW - 14 * MINUTE, network="whatsapp", key="c2")
    await messages.add(NOW - WINDOW - MINUTE)  # before the window
    baseline = [
        NOW - DAY - WINDOW,  # the day before: [now - 1 d - window, now - 1 d)
        NOW - DAY - MINUTE,
        NOW - 3 * DAY - 5 * MINUTE,
        NOW - 7 * DAY - MINUTE,  # the seventh day
    ]
    for at in baseline:
        await messages.add(at)
    for outside in (NOW - DAY, NOW - DAY - WINDOW - MINUTE, NOW - 8 * DAY - MINUTE, NOW - DAY / 2):
        await messages.add(outside)

    volume = await SpikeStore(db).volume(NOW, WINDOW)

    assert volume.by_network == {"telegram": 3, "whatsapp": 1}
    assert volume.count == 4
    assert volume.baseline == len(baseline) / 7


async def test_volume_of_a_quiet_desk(db: Database) -> None:
    assert await SpikeStore(db).volume(NOW, WINDOW) == Volume({}, 0.0)


async def test_volume_reads_only_the_index_ranges(db: Database) -> None:
    """The counts are ranges of ix_customer_message_sent, never a scan of the table."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's plan depends on its statistics; SQLite's on the schema")
    async with db.read() as session:
        rows = await session.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM customer_message"
                " WHERE sent_at >= '2026-03-08 11:45:00' AND sent_at < '2026-03-08 12:00:00'"
            )
        )
        plan = " ".join(str(row[-1]) for row in rows)
    assert "COVERING INDEX ix_customer_message_sent" in plan


async def test_one_spike_open_at_a_time_and_closed_once(db: Database) -> None:
    store = SpikeStore(db)
    volume = Volume({"telegram": 30}, 2.0)
    opened = await asyncio.gather(store.open(NOW, volume), store.open(NOW, volume))
    spike_id = next(i for i in opened if i is not None)
    assert opened.count(None) == 1
    current = await store.current()
    assert current is not None and (current.id, current.count, current.baseline) == (
        spike_id,
        30,
        2.0,
    )
    assert await store.untold(NOW - DAY) == [spike_id]  # the page is owed
    await store.paged(spike_id, "U0ONCALL1", "1.0001")
    assert await store.untold(NOW - DAY) == []

    closed = await asyncio.gather(store.close(spike_id, NOW + MINUTE), store.close(spike_id, NOW))
    assert sorted(closed) == [False, True]
    assert await store.current() is None
    assert await store.untold(NOW - DAY) == [spike_id]  # "it is over" is owed
    await store.told_over(spike_id, "1.0002")
    assert await store.untold(NOW - DAY) == []
    assert await store.open(NOW + 2 * MINUTE, volume) not in (None, spike_id)  # the next one


def moment(
    key: str, conversation_id: int, at: datetime, user: str = "U0AGENT01", network: str = "telegram"
) -> NewMoment:
    return NewMoment(
        key=key,
        source="reaction",
        conversation_id=conversation_id,
        network=network,
        customer="Ann",
        user_id=user,
        at=at,
        note=None,
        slack_channel="C0INBOX01",
        slack_ts="1.0001",
        thread_ts="1.0000",
    )


async def test_moments_are_recorded_once_removed_and_counted(db: Database) -> None:
    conversation = await Messages(db).add(NOW - DAY)
    other = await Messages(db).add(NOW - DAY, network="whatsapp", key="c9")
    store = MomentStore(db)
    results = await asyncio.gather(
        store.record(moment("reaction:a", conversation, NOW)),
        store.record(moment("reaction:a", conversation, NOW)),
    )
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].id == results[1][0].id
    await store.record(moment("reaction:b", conversation, NOW + MINUTE, "U0OTHER01"))
    await store.record(moment("reaction:c", other, NOW + 2 * MINUTE, network="whatsapp"))
    await store.record(moment("reaction:d", conversation, NOW + DAY))  # another day

    assert [m.key for m in await store.between(NOW, NOW + DAY)] == [
        "reaction:a",
        "reaction:b",
        "reaction:c",
    ]
    latest = await store.between(NOW, NOW + DAY, limit=2)
    assert [m.key for m in latest] == ["reaction:c", "reaction:b"]
    whatsapp = await store.between(NOW, NOW + DAY, 2, network="whatsapp", team="unassigned")
    assert [m.key for m in whatsapp] == ["reaction:c"]
    assert await store.between(NOW, NOW + DAY, 2, team="sales") == []
    figures = await compute(db, NOW, NOW + DAY, now=NOW + DAY)
    assert figures["moments"] == 3
    assert {n: part["moments"] for n, part in figures["by_network"].items()} == {
        "telegram": 2,
        "whatsapp": 1,
    }
    only = await compute(db, NOW, NOW + DAY, network="whatsapp", team="unassigned", now=NOW)
    assert only["moments"] == 1
    assert (await compute(db, NOW, NOW + DAY, team="sales", now=NOW))["moments"] == 0

    removed = await store.remove("reaction:b")
    assert removed is not None and removed.user_id == "U0OTHER01"
    assert await store.remove("reaction:b") is None
    assert (await compute(db, NOW, NOW + DAY, now=NOW + DAY))["moments"] == 2

    assert sorted(await store.unposted(NOW + 2 * DAY)) == sorted(
        m.id or 0 for m in await store.between(NOW, NOW + 2 * DAY)
    )
    first = results[0][0].id
    assert first is not None
    assert await store.posted(first, "1.0005") is True
    assert first not in await store.unposted(NOW + 2 * DAY)
    assert await store.posted(10_000, "1.0006") is False  # gone: its reaction was removed
