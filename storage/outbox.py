"""Automatic messages the bot sends to a customer (the out-of-hours auto-reply, the
rating question), in SQL: one outbox, parameterised by each one's table.

Sending follows the team replies' rules: pending with a retry time, `attempt_at` while
a send is in flight (a send cut short by a crash is not repeated: it is failed as "may
not have been sent"). Each feature claims its rows its own way; the table only needs
the columns of `OutboxRow`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.core import ReplyState
from storage.db import Database
from storage.models import PENDING, CsatSurvey, OutOfHoursReply, TeamReply

# Every table of automatic messages: their echoes are no colleague's replies.
TABLES: tuple[type[OutOfHoursReply | CsatSurvey], ...] = (OutOfHoursReply, CsatSurvey)


class OutboxRow(Protocol):
    id: int | None
    conversation_id: int
    network: str
    state: ReplyState
    attempts: int
    next_attempt_at: datetime | None
    attempt_at: datetime | None
    sent_at: datetime | None
    external_id: str | None
    last_error: str | None


Row = TypeVar("Row", bound=OutboxRow)


class Outbox(Generic[Row]):
    def __init__(self, db: Database, table: type[Row]) -> None:
        self.db = db
        self._table = table

    async def due_conversations(self, now: datetime, limit: int = 100) -> list[int]:
        """Conversations with a message to send now."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(col(self._table.conversation_id))
                .where(text(PENDING), col(self._table.next_attempt_at) <= now)
                .distinct()
                .limit(limit)
            )
            return [row[0] for row in rows]

    async def next_due_at(self) -> datetime | None:
        async with self.db.read() as session:
            found: datetime | None = (
                await session.execute(
                    select(func.min(self._table.next_attempt_at)).where(text(PENDING))
                )
            ).scalar_one()
        return found

    async def due(self, conversation_id: int, now: datetime) -> list[Row]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(self._table)
                .where(
                    col(self._table.conversation_id) == conversation_id,
                    text(PENDING),
                    col(self._table.next_attempt_at) <= now,
                )
                .order_by(col(self._table.id))
            )
            return list(rows.scalars())

    async def begin_send(self, row_id: int, now: datetime) -> None:
        await self._set(row_id, attempt_at=now)

    async def mark_sent(self, row_id: int, external_id: str | None, now: datetime) -> None:
        """Sent. An echo of it the network already reported is dropped: it is no
        colleague's reply (a later one is never stored: `is_auto_reply`)."""
        async with self.db.session() as session:
            row = await session.get(self._table, row_id)
            assert row is not None
            row.state, row.sent_at, row.external_id = ReplyState.SENT, now, external_id
            row.attempt_at = row.next_attempt_at = None
            if external_id is not None:
                await session.execute(
                    delete(TeamReply).where(
                        col(TeamReply.network) == row.network,
                        col(TeamReply.external_id) == external_id,
                        col(TeamReply.state) == ReplyState.ECHO,
                    )
                )

    async def retry_later(self, row_id: int, at: datetime, error: str) -> None:
        async with self.db.session() as session:
            row = await session.get(self._table, row_id)
            assert row is not None
            row.attempts += 1
            row.next_attempt_at, row.attempt_at, row.last_error = at, None, error[:500]

    async def mark_failed(self, row_id: int, error: str) -> None:
        await self._set(
            row_id,
            state=ReplyState.FAILED,
            next_attempt_at=None,
            attempt_at=None,
            last_error=error[:500],
        )

    async def all(self, conversation_id: int) -> list[Row]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(self._table)
                .where(col(self._table.conversation_id) == conversation_id)
                .order_by(col(self._table.id))
            )
            return list(rows.scalars())

    async def _set(self, row_id: int, **values: object) -> None:
        async with self.db.session() as session:
            row = await session.get(self._table, row_id)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)


async def is_auto_reply(session: AsyncSession, network: str, external_id: str) -> bool:
    """Whether a network message id is one of our automatic messages (the network's
    echo of it)."""
    first, *others = [
        select(col(table.id)).where(
            col(table.network) == network, col(table.external_id) == external_id
        )
        for table in TABLES
    ]
    found = await session.execute(first.union_all(*others))
    return found.first() is not None
