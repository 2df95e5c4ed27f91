"""The saved replies' storage (storage/saved_replies.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.db import Database
from storage.models import SavedReply
from storage.saved_replies import SavedReplyStore
from tests.pg import fresh_postgres

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind (the schema is alembic's)."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'saved.db'}")
        try:
            await db.migrate()
            yield db
        finally:
            await db.dispose()
        return
    async with fresh_postgres() as url:
        db = Database(url)
        try:
            await db.migrate()
            yield db
        finally:
            await db.dispose()


async def test_add_edit_remove_and_list(database: Database) -> None:
    store = SavedReplyStore(database)
    assert await store.add("greeting", "", "Hello {customer_name}", "U1", T0)
    assert not await store.add("greeting", "", "Hi", "U2", T0)  # exists: not overwritten
    assert await store.add("greeting", "telegram", "Привет 👋", "U1", T0)
    assert await store.add("bye", "", "Bye", "U1", T0)
    later = T0 + timedelta(minutes=5)
    assert await store.edit("greeting", "", "Hello again", "U2", later)
    assert not await store.edit("greeting", "whatsapp", "Hi", "U2", later)
    rows = await store.all()
    assert [(r.name, r.network, r.text) for r in rows] == [
        ("bye", "", "Bye"),
        ("greeting", "", "Hello again"),
        ("greeting", "telegram", "Привет 👋"),
    ]
    edited = rows[1]
    assert (edited.created_by, edited.updated_by) == ("U1", "U2")
    assert (edited.created_at, edited.updated_at) == (T0, later)
    assert await store.remove("greeting", "telegram")
    assert not await store.remove("greeting", "telegram")
    assert [(r.name, r.network) for r in await store.all()] == [("bye", ""), ("greeting", "")]
    assert edited.id is not None
    fetched = await store.get(edited.id)
    assert fetched is not None and fetched.text == "Hello again"
    assert await store.get(10_000) is None


async def test_usable_prefers_the_most_specific_variant(database: Database) -> None:
    store = SavedReplyStore(database)
    await store.add("greeting", "", "Hello", "U1", T0)
    await store.add("greeting", "meta", "Hello from Meta", "U1", T0)
    await store.add("greeting", "instagram", "Hello on Instagram", "U1", T0)
    await store.add("dm-only", "whatsapp", "WhatsApp only", "U1", T0)
    await store.add("thanks", "", "Thanks", "U1", T0)

    def texts(rows: list[SavedReply]) -> list[tuple[str, str]]:
        return [(r.name, r.text) for r in rows]

    assert texts(await store.usable(["instagram", "meta"])) == [
        ("greeting", "Hello on Instagram"),
        ("thanks", "Thanks"),
    ]
    assert texts(await store.usable(["messenger", "meta"])) == [
        ("greeting", "Hello from Meta"),
        ("thanks", "Thanks"),
    ]
    assert texts(await store.usable(["telegram"])) == [("greeting", "Hello"), ("thanks", "Thanks")]
    assert texts(await store.usable(["whatsapp"])) == [
        ("dm-only", "WhatsApp only"),
        ("greeting", "Hello"),
        ("thanks", "Thanks"),
    ]


async def test_racing_adds_of_one_name_store_one(database: Database) -> None:
    """Two processes adding the same name at once: the unique key keeps one, and each
    learns whether it was theirs."""
    other = Database(str(database.engine.url.render_as_string(hide_password=False)))
    try:
        results = await asyncio.gather(
            *(
                SavedReplyStore(db).add("greeting", "", f"Hello {i}", f"U{i}", T0)
                for i, db in enumerate([database, other] * 3)
            )
        )
    finally:
        await other.dispose()
    assert sorted(results) == [False] * 5 + [True]
    [row] = await SavedReplyStore(database).all()
    assert row.text == f"Hello {results.index(True)}"
