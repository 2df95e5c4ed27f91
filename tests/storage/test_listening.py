"""The listening store on SQLite and PostgreSQL: one row per source key, one digest per
window, chunks marked once, an action once, the poll cursor kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.db import Database
from storage.listening import Mentions, NewMention
from storage.models import MentionState
from tests.pg import fresh_postgres

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def mentions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mentions]:
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'listen.db'}")
        await db.migrate()
        try:
            yield Mentions(db)
        finally:
            await db.dispose()
        return
    async with fresh_postgres() as url:
        db = Database(url)
        await db.migrate()
        try:
            yield Mentions(db)
        finally:
            await db.dispose()


def new(key: str) -> NewMention:
    return NewMention(
        source_key=key,
        source="generic",
        external_id=key,
        url=f"https://e.example/{key}",
        author_id="a",
        author_name="Ada",
        author_handle=None,
        text="Relaydesk",
        term="Relaydesk",
        variant="Relaydesk",
        found="Relaydesk",
        edits=0,
        sent_at=T0,
        opening={"network": "generic", "conversation_key": key, "reply_context": {}},
    )


async def test_a_source_key_is_stored_once_even_when_racing(mentions: Mentions) -> None:
    counts = await asyncio.gather(*(mentions.store([new("url:a")], T0) for _ in range(5)))
    assert sum(counts) == 1
    assert await mentions.store([new("url:a"), new("url:b")], T0) == 1
    assert [m.source_key for m in await mentions.waiting(10)] == ["url:a", "url:b"]
    assert await mentions.count_since(T0) == 2
    assert await mentions.count_since(T0 + timedelta(seconds=1)) == 0


async def test_a_window_gets_one_digest_in_chunks_and_each_chunk_is_marked_once(
    mentions: Mentions,
) -> None:
    await mentions.store([new(f"url:{n}") for n in range(5)], T0)
    racing = await asyncio.gather(*(mentions.open_digest(T0, "C1", 2, T0) for _ in range(3)))
    [digest_id] = [d for d in racing if d is not None]
    assert await mentions.open_digest(T0, "C1", 2, T0) is None  # the window has its digest
    assert await mentions.waiting(10) == []
    [digest] = await mentions.unfinished_digests()
    assert (digest.count, digest.chunks, digest.posted_chunks) == (5, 3, 0)
    assert [len(await mentions.chunk(digest_id, c)) for c in range(3)] == [2, 2, 1]
    assert await mentions.digest_summary(digest_id) == [("Relaydesk", "generic", 5)]

    await mentions.begin_chunk(digest_id, T0)
    await mentions.mark_chunk_posted(digest_id, 0, "C1", "100.1")
    await mentions.mark_chunk_posted(digest_id, 0, "C1", "100.9")  # a late repeat: no effect
    [digest] = await mentions.unfinished_digests()
    assert (digest.posted_chunks, digest.root_ts, digest.attempt_at) == (1, "100.1", None)
    shown = await mentions.shown_with("C1", "100.9")
    assert [m.state for m in shown] == [MentionState.POSTED] * 2
    for chunk, ts in ((1, "101.1"), (2, "102.1")):
        await mentions.mark_chunk_posted(digest_id, chunk, "C1", ts)
    assert await mentions.unfinished_digests() == []

    # a mention found later waits for the next window's digest
    await mentions.store([new("url:later")], T0)
    later = await mentions.open_digest(T0 + timedelta(minutes=10), "C1", 2, T0)
    assert later is not None and len(await mentions.chunk(later, 0)) == 1


async def test_a_mention_is_opened_or_dismissed_once(mentions: Mentions) -> None:
    await mentions.store([new("url:a")], T0)
    [mention] = await mentions.waiting(1)
    assert mention.id is not None
    await mentions.begin_post(mention.id, T0)
    await mentions.mark_posted(mention.id, "C1", "1.1")
    outcomes = await asyncio.gather(
        mentions.act(mention.id, MentionState.OPENED, "U1", T0, 7),
        mentions.act(mention.id, MentionState.DISMISSED, "U2", T0),
    )
    assert sorted(outcomes) == [False, True]
    stored = await mentions.get(mention.id)
    assert stored is not None and stored.state in (MentionState.OPENED, MentionState.DISMISSED)
    assert stored.attempt_at is None and stored.slack_ts == "1.1"


async def test_the_poll_cursor_is_kept_and_moved(mentions: Mentions) -> None:
    assert await mentions.cursor("x") is None
    await mentions.set_cursor("x", "100", T0)
    await mentions.set_cursor("x", "200", T0)
    assert await mentions.cursor("x") == "200"
    assert await mentions.cursor("y") is None


async def test_a_refused_post_is_failed_not_waiting(mentions: Mentions) -> None:
    await mentions.store([new("url:a"), replace(new("url:b"), text="x")], T0)
    first, _ = await mentions.waiting(2)
    assert first.id is not None
    await mentions.fail(first.id)
    assert [m.source_key for m in await mentions.waiting(5)] == ["url:b"]
