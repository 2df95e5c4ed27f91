"""Exactly one daily summary per local day, whatever the number of processes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlmodel import col

from storage.db import Database, insert_ignore
from storage.models import Escalation, SummaryPost

# A claim whose post never completed (the process died mid-post) may be taken over.
STALE_CLAIM = timedelta(minutes=10)


class SummaryRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, day: date, now: datetime) -> bool:
        """True for the one caller that may post `day`'s summary now."""
        async with self.db.session() as session:
            if await insert_ignore(session, SummaryPost, ("day",), day=day, claimed_at=now):
                return True
            taken = await session.execute(
                update(SummaryPost)
                .where(
                    col(SummaryPost.day) == day,
                    col(SummaryPost.posted_at).is_(None),
                    col(SummaryPost.claimed_at) < now - STALE_CLAIM,
                )
                .values(claimed_at=now)
            )
            return bool(taken.rowcount)  # type: ignore[attr-defined]

    async def posted(self, day: date, channel: str, ts: str, now: datetime) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(SummaryPost)
                .where(col(SummaryPost.day) == day)
                .values(posted_at=now, channel=channel, ts=ts)
            )

    async def release(self, day: date) -> None:
        """The post failed: let the next round try again."""
        async with self.db.session() as session:
            await session.execute(
                delete(SummaryPost).where(
                    col(SummaryPost.day) == day,
                    col(SummaryPost.posted_at).is_(None),
                )
            )

    async def escalations(self, since: datetime, until: datetime) -> int:
        """Pages sent in the window, for the summary."""
        async with self.db.session() as session:
            return int(
                (
                    await session.execute(
                        select(func.count())
                        .select_from(Escalation)
                        .where(
                            col(Escalation.sent_at) >= since,
                            col(Escalation.sent_at) < until,
                        )
                    )
                ).scalar_one()
            )
