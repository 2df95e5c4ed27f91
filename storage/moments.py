"""Meaningful relationship moments: recorded once, removed with their reaction, counted.

Recording is an INSERT ... ON CONFLICT (key) DO NOTHING, so Slack's retries and
several processes store one row; the note in the thread is posted once under a
coordination lease with a re-read of `post_ts` (`bot.services.moments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlmodel import col

from storage.db import Database, insert_ignore
from storage.models import Conversation, Moment
from storage.stats import UNASSIGNED, tagged


@dataclass(frozen=True)
class NewMoment:
    key: str
    source: str
    conversation_id: int
    network: str
    customer: str
    user_id: str
    at: datetime
    note: str | None
    slack_channel: str
    slack_ts: str
    thread_ts: str


class MomentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, new: NewMoment) -> tuple[Moment, bool]:
        """The moment stored under `new.key`, and whether this call created it."""
        async with self.db.session() as session:
            created = await insert_ignore(session, Moment, ("key",), **vars(new))
            moment = (
                await session.execute(select(Moment).where(col(Moment.key) == new.key))
            ).scalar_one()
        return moment, created is not None

    async def remove(self, key: str) -> Moment | None:
        """Delete the moment stored under `key`; the row deleted, or None."""
        async with self.db.session() as session:
            moment = (
                await session.execute(select(Moment).where(col(Moment.key) == key))
            ).scalar_one_or_none()
            if moment is None:
                return None
            gone = await session.execute(delete(Moment).where(col(Moment.id) == moment.id))
            return moment if gone.rowcount else None  # type: ignore[attr-defined]

    async def get(self, moment_id: int) -> Moment | None:
        async with self.db.read() as session:
            return await session.get(Moment, moment_id)

    async def posted(self, moment_id: int, ts: str) -> bool:
        """Record the note's ts; False when the moment is gone (its reaction removed)."""
        async with self.db.session() as session:
            done = await session.execute(
                update(Moment).where(col(Moment.id) == moment_id).values(post_ts=ts)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def unposted(self, before: datetime, limit: int = 50) -> list[int]:
        """Moments recorded before `before` whose note in the thread is not posted yet."""
        async with self.db.read() as session:
            statement = (
                select(col(Moment.id))
                .where(col(Moment.post_ts).is_(None), col(Moment.at) < before)
                .order_by(col(Moment.at))
                .limit(limit)
            )
            return [int(i) for i in (await session.execute(statement)).scalars() if i is not None]

    async def between(
        self,
        since: datetime,
        until: datetime,
        limit: int | None = None,
        *,
        network: str | None = None,
        team: str | None = None,
        tag: str | None = None,
    ) -> list[Moment]:
        """The moments recorded in [since, until): oldest first, or the latest `limit`;
        of one network, of the conversations now with one team (`unassigned`: none), or
        of those routing rules gave `tag`."""
        async with self.db.read() as session:
            statement = select(Moment).where(col(Moment.at) >= since, col(Moment.at) < until)
            if network is not None:
                statement = statement.where(col(Moment.network) == network)
            if team is not None:
                owner = col(Conversation.team)
                statement = statement.join(
                    Conversation, col(Conversation.id) == col(Moment.conversation_id)
                ).where(owner.is_(None) if team == UNASSIGNED else owner == team)
            if tag is not None:
                statement = statement.where(col(Moment.conversation_id).in_(tagged(session, tag)))
            if limit is None:
                statement = statement.order_by(col(Moment.at), col(Moment.id))
                return list((await session.execute(statement)).scalars())
            statement = statement.order_by(col(Moment.at).desc(), col(Moment.id).desc())
            return list((await session.execute(statement.limit(limit))).scalars())
