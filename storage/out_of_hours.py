"""Out-of-hours auto-replies in SQL: claimed once per conversation per closed period.

The claim is the row (UNIQUE(conversation_id, opens_at), inserted with ON CONFLICT
DO NOTHING), so two processes that see the same closed-period message both try and
only one gets a row to send. Sending follows the team replies' rules: pending with
a retry time, `attempt_at` while a send is in flight (a send cut short by a crash
is not repeated: it is failed as "may not have been sent").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.core import ReplyState
from storage.db import Database, insert_ignore
from storage.models import PENDING, CsatSurvey, OutOfHoursReply, TeamReply


class OutOfHoursReplies:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, conversation_id: int, network: str, opens_at: datetime, now: datetime
    ) -> int | None:
        """The new row's id, due now; None when this closed period already has one."""
        async with self.db.session() as session:
            claimed: int | None = await insert_ignore(
                session,
                OutOfHoursReply,
                ("conversation_id", "opens_at"),
                conversation_id=conversation_id,
                opens_at=opens_at,
                network=network,
                state=ReplyState.PENDING,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        return claimed

    async def due_conversations(self, now: datetime, limit: int = 100) -> list[int]:
        """Conversations with an auto-reply to send now."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(col(OutOfHoursReply.conversation_id))
                .where(text(PENDING), col(OutOfHoursReply.next_attempt_at) <= now)
                .distinct()
                .limit(limit)
            )
            return [row[0] for row in rows]

    async def next_due_at(self) -> datetime | None:
        async with self.db.read() as session:
            found: datetime | None = (
                await session.execute(
                    select(func.min(OutOfHoursReply.next_attempt_at)).where(text(PENDING))
                )
            ).scalar_one()
        return found

    async def due(self, conversation_id: int, now: datetime) -> list[OutOfHoursReply]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(OutOfHoursReply)
                .where(
                    col(OutOfHoursReply.conversation_id) == conversation_id,
                    text(PENDING),
                    col(OutOfHoursReply.next_attempt_at) <= now,
                )
                .order_by(col(OutOfHoursReply.id))
            )
            return list(rows.scalars())

    async def begin_send(self, reply_id: int, now: datetime) -> None:
        await self._set(reply_id, attempt_at=now)

    async def mark_sent(self, reply_id: int, external_id: str | None, now: datetime) -> None:
        """Sent. An echo of it the network already reported is dropped: it is no
        colleague's reply (a later one is never stored: `is_auto_reply`)."""
        async with self.db.session() as session:
            reply = await session.get(OutOfHoursReply, reply_id)
            assert reply is not None
            reply.state, reply.sent_at, reply.external_id = ReplyState.SENT, now, external_id
            reply.attempt_at = reply.next_attempt_at = None
            if external_id is not None:
                await session.execute(
                    delete(TeamReply).where(
                        col(TeamReply.network) == reply.network,
                        col(TeamReply.external_id) == external_id,
                        col(TeamReply.state) == ReplyState.ECHO,
                    )
                )

    async def retry_later(self, reply_id: int, at: datetime, error: str) -> None:
        async with self.db.session() as session:
            reply = await session.get(OutOfHoursReply, reply_id)
            assert reply is not None
            reply.attempts += 1
            reply.next_attempt_at, reply.attempt_at, reply.last_error = at, None, error[:500]

    async def mark_failed(self, reply_id: int, error: str) -> None:
        await self._set(
            reply_id,
            state=ReplyState.FAILED,
            next_attempt_at=None,
            attempt_at=None,
            last_error=error[:500],
        )

    async def all(self, conversation_id: int) -> list[OutOfHoursReply]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(OutOfHoursReply)
                .where(col(OutOfHoursReply.conversation_id) == conversation_id)
                .order_by(col(OutOfHoursReply.id))
            )
            return list(rows.scalars())

    async def _set(self, reply_id: int, **values: object) -> None:
        async with self.db.session() as session:
            reply = await session.get(OutOfHoursReply, reply_id)
            assert reply is not None
            for name, value in values.items():
                setattr(reply, name, value)


async def is_auto_reply(session: AsyncSession, network: str, external_id: str) -> bool:
    """Whether a network message id is one of our auto-replies or rating questions (the
    network's echo of it)."""
    found = await session.execute(
        select(col(OutOfHoursReply.id))
        .where(
            col(OutOfHoursReply.network) == network,
            col(OutOfHoursReply.external_id) == external_id,
        )
        .union_all(
            select(col(CsatSurvey.id)).where(
                col(CsatSurvey.network) == network, col(CsatSurvey.external_id) == external_id
            )
        )
    )
    return found.first() is not None
