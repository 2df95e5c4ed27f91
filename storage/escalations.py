"""Escalation pages and on-call overrides in SQL.

Every decision about a conversation's escalation is taken under its row lock
(`FOR UPDATE` on PostgreSQL; SQLite serialises writers): `locked()` re-reads the
latest turn, its pages and the last handoff, so a reply, an ack or another process
that got there first is always seen. A page row is inserted with
`INSERT .. ON CONFLICT DO NOTHING` on UNIQUE(turn_id, level, kind): only the
inserter sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from storage.core import ConversationStatus
from storage.db import Database, insert_ignore
from storage.models import (
    Conversation,
    Escalation,
    Handoff,
    OncallOverride,
    Turn,
    lock_conversation,
)


@dataclass(frozen=True)
class TurnState:
    """A conversation, its latest turn, that turn's pages and the last handoff."""

    conversation: Conversation
    turn: Turn | None
    pages: list[Escalation]  # ordered by level, then created_at
    last_handoff_at: datetime | None


class Locked:
    """A conversation held under its row lock for one transaction."""

    def __init__(self, store: EscalationStore, session: AsyncSession, state: TurnState) -> None:
        self._store = store
        self._session = session
        self.state = state

    async def add_page(
        self,
        *,
        level: int,
        kind: str,
        target: str | None,
        now: datetime,
        reason: str | None = None,
        by_user: str | None = None,
    ) -> Escalation | None:
        """Insert a page for the latest turn; None if that (turn, level, kind) exists."""
        conversation, turn = self.state.conversation, self.state.turn
        assert conversation.id is not None
        escalation_id = await insert_ignore(
            self._session,
            Escalation,
            ("turn_id", "level", "kind"),
            conversation_id=conversation.id,
            turn_id=turn.id if turn else None,
            level=level,
            kind=kind,
            target_user=target,
            reason=reason,
            by_user=by_user,
            created_at=now,
        )
        if escalation_id is None:
            return None
        return await self._session.get(Escalation, escalation_id)

    async def ack(self, user: str, now: datetime) -> None:
        """Mark every page of the latest turn acknowledged by `user`."""
        for page in self.state.pages:
            if page.acked_at is None:
                page.acked_by = user
                page.acked_at = now


class EscalationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def waiting_conversations(self, started_by: datetime) -> list[int]:
        """Open conversations whose latest turn is unanswered and unacknowledged, and
        either started by `started_by` or already paged (a manual page starts the clock)."""
        later = aliased(Turn)
        is_latest = ~exists().where(
            col(later.conversation_id) == col(Turn.conversation_id),
            col(later.started_at) > col(Turn.started_at),
        )
        acked = exists().where(
            col(Escalation.turn_id) == col(Turn.id), col(Escalation.acked_at).is_not(None)
        )
        paged = exists().where(col(Escalation.turn_id) == col(Turn.id))
        statement = (
            select(col(Turn.conversation_id))
            .join(Conversation, col(Conversation.id) == col(Turn.conversation_id))
            .where(
                col(Conversation.status) == ConversationStatus.OPEN,
                col(Turn.answered_at).is_(None),
                is_latest,
                ~acked,
                or_(col(Turn.started_at) <= started_by, paged),
            )
            .order_by(col(Turn.started_at))
        )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars())

    @asynccontextmanager
    async def locked(self, conversation_id: int) -> AsyncIterator[Locked]:
        """Lock the conversation's row and read its escalation state, in one transaction."""
        async with self.db.session() as session:
            conversation = await lock_conversation(session, conversation_id)
            turn = (
                await session.execute(
                    select(Turn)
                    .where(col(Turn.conversation_id) == conversation_id)
                    .order_by(col(Turn.started_at).desc(), col(Turn.id).desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            pages: list[Escalation] = []
            if turn is not None:
                pages = list(
                    (
                        await session.execute(
                            select(Escalation)
                            .where(col(Escalation.turn_id) == turn.id)
                            .order_by(col(Escalation.level), col(Escalation.created_at))
                        )
                    ).scalars()
                )
            last_handoff_at = (
                await session.execute(
                    select(func.max(col(Handoff.created_at))).where(
                        col(Handoff.conversation_id) == conversation_id
                    )
                )
            ).scalar_one_or_none()
            yield Locked(self, session, TurnState(conversation, turn, pages, last_handoff_at))

    async def unsent(self, created_after: datetime, created_before: datetime) -> list[int]:
        """Pages claimed but never processed (the process stopped between insert and send)."""
        statement = (
            select(col(Escalation.id))
            .where(
                col(Escalation.sent_at).is_(None),
                col(Escalation.created_at) > created_after,
                col(Escalation.created_at) <= created_before,
            )
            .order_by(col(Escalation.id))
        )
        async with self.db.session() as session:
            return [value for value in (await session.execute(statement)).scalars() if value]

    async def page(self, escalation_id: int) -> Escalation | None:
        async with self.db.session() as session:
            return await session.get(Escalation, escalation_id)

    async def mark_sent(self, escalation_id: int, now: datetime) -> bool:
        """Record that a page was processed; show its target on the root. False if done."""
        async with self.db.session() as session:
            page = await session.get(Escalation, escalation_id)
            if page is None:
                return False
            conversation = await lock_conversation(session, page.conversation_id)
            await session.refresh(page)
            if page.sent_at is not None:
                return False
            page.sent_at = now
            if page.target_user and conversation.status == ConversationStatus.OPEN:
                conversation.escalated_to = page.target_user
                conversation.version += 1
            return True

    # -- on-call overrides --------------------------------------------------
    async def overrides(self, ending_after: datetime) -> list[OncallOverride]:
        statement = (
            select(OncallOverride)
            .where(col(OncallOverride.ends_at) > ending_after)
            .order_by(col(OncallOverride.created_at), col(OncallOverride.id))
        )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars())

    async def add_override(
        self, user: str, starts_at: datetime, ends_at: datetime, created_by: str, now: datetime
    ) -> OncallOverride:
        row = OncallOverride(
            user_id=user,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            created_at=now,
        )
        async with self.db.session() as session:
            session.add(row)
        return row

    async def pages_of(self, conversation_id: int) -> Sequence[Escalation]:
        """Every page of a conversation, oldest first (for tests and the summary)."""
        statement = (
            select(Escalation)
            .where(col(Escalation.conversation_id) == conversation_id)
            .order_by(col(Escalation.created_at), col(Escalation.level), col(Escalation.id))
        )
        async with self.db.session() as session:
            return list((await session.execute(statement)).scalars())
