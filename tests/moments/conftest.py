"""A migrated database per test: SQLite in a temporary folder, and a fresh PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from storage.db import Database
from storage.inbound import NewCustomerMessage
from storage.repo import Repository
from tests.pg import fresh_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'moments.db'}")
        await database.migrate()
        try:
            yield database
        finally:
            await database.dispose()
        return
    async with fresh_postgres() as url:
        database = Database(url)
        await database.migrate()
        try:
            yield database
        finally:
            await database.dispose()


class Messages:
    """Customer messages with exact network times, through the real Repository."""

    def __init__(self, db: Database) -> None:
        self.repo = Repository(db)
        self.serial = 0

    async def add(
        self, at: datetime, *, network: str = "telegram", key: str = "c1", text: str = "hello"
    ) -> int:
        self.serial += 1
        stored = await self.repo.store_customer_messages(
            [
                NewCustomerMessage(
                    network=network,
                    conversation_key=key,
                    external_id=f"{key}-m{self.serial}",
                    author_id=f"a-{key}",
                    author_name="Ann",
                    text=text,
                    sent_at=at,
                    received_at=at,
                )
            ]
        )
        return stored[0].conversation_id
