"""Migration 0004 (pending messages' partial indexes) on a database that holds data.

On SQLite and PostgreSQL: messages are stored at 0003, some relayed and one waiting
for a retry; after the upgrade the dispatcher finds the same work through the new
indexes, and the downgrade brings the old index back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text, update
from sqlalchemy.engine import Connection
from sqlmodel import col

from storage.db import Database
from storage.models import CustomerMedia, CustomerMessage
from storage.repo import NewCustomerMessage, Repository
from tests.stats.test_migration import _alembic, empty  # noqa: F401 - the fixture

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NEW = {"ix_customer_message_due", "ix_customer_message_retry"}
OLD = "ix_customer_message_pending"


def _message(chat: str, n: int) -> NewCustomerMessage:
    return NewCustomerMessage(
        network="telegram",
        conversation_key=chat,
        external_id=f"{chat}:{n}",
        author_id=chat,
        author_name=chat,
        author_handle=None,
        text=f"message {n}",
        sent_at=T0 + timedelta(seconds=n),
        received_at=T0 + timedelta(seconds=n),
        attachments=[],
        reply_context={},
        in_reply_to=None,
    )


async def _index_names(db: Database) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return {
            index["name"]
            for index in inspect(connection).get_indexes("customer_message")
            if index["name"] is not None
        }

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def _work(repo: Repository) -> tuple[list[int], datetime | None, list[int]]:
    now = T0 + timedelta(minutes=1)
    return (
        await repo.due_conversations(now),
        await repo.next_due_at(),
        await repo.due_conversations(now, limit=1),
    )


async def test_0004_finds_the_same_work_and_is_reversible(empty: Database) -> None:  # noqa: F811
    db = empty
    await _alembic(db, "upgrade", "0003")
    async with db.engine.begin() as connection:  # today's dispatcher also reads files
        await connection.run_sync(CustomerMedia.__table__.create)  # type: ignore[attr-defined]
    repo = Repository(db)
    stored = [
        await repo.store_customer_messages([_message(c, n) for n in range(3)]) for c in "abcd"
    ]
    a, b, c, _ = (items[0].conversation_id for items in stored)
    # Written as of 0003 (today's repository writes columns added later).
    async with db.session() as session:
        await session.execute(
            text("UPDATE customer_message SET state = 'posted' WHERE conversation_id = :c"),
            {"c": stored[0][0].conversation_id},
        )
        await session.execute(
            update(CustomerMessage)
            .where(col(CustomerMessage.conversation_id) == stored[1][0].conversation_id)
            .values(next_attempt_at=T0 + timedelta(hours=1))
        )
    before = await _work(repo)
    assert a not in before[0] and b not in before[0] and c in before[0]
    assert before[1] == T0 + timedelta(hours=1)
    assert OLD in await _index_names(db)

    await _alembic(db, "upgrade", "0004")
    names = await _index_names(db)
    assert NEW <= names and OLD not in names
    assert await _work(repo) == before

    await _alembic(db, "downgrade", "0003")
    names = await _index_names(db)
    assert OLD in names and not NEW & names
    assert await _work(repo) == before
