"""Volume spikes: the counts the rule reads, and one row per spike.

Every count is a range of `ix_customer_message_sent` (sent_at first), bounded by
the window: the current window, and the same window on each of the 7 days
before (`baseline`). A spike row is opened with INSERT ... ON CONFLICT DO NOTHING
on UNIQUE(open_slot), closed by a conditional UPDATE: whichever process does
either is the only one told so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlmodel import col

from storage.db import Database, insert_ignore
from storage.models import CustomerMessage, Spike

BASELINE_DAYS = 7
OPEN = 1  # `spike.open_slot` while a spike lasts


@dataclass(frozen=True)
class Volume:
    """Customer messages in the window ending now, by network, and the baseline."""

    by_network: dict[str, int]
    baseline: float  # the same window's average count over the previous 7 days

    @property
    def count(self) -> int:
        return sum(self.by_network.values())


def _window(end: datetime, window: timedelta) -> ColumnElement[bool]:
    return and_(col(CustomerMessage.sent_at) >= end - window, col(CustomerMessage.sent_at) < end)


class SpikeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def volume(self, now: datetime, window: timedelta) -> Volume:
        """The window is [now - window, now]; the baseline the sum of the 7 windows
        [now - k days - window, now - k days) for k = 1..7, divided by 7."""
        async with self.db.read() as session:
            current = await session.execute(
                select(col(CustomerMessage.network), func.count())
                .where(
                    col(CustomerMessage.sent_at) >= now - window,
                    col(CustomerMessage.sent_at) <= now,
                )
                .group_by(col(CustomerMessage.network))
            )
            by_network = {network: int(count) for network, count in current}
            days = [now - timedelta(days=k) for k in range(1, BASELINE_DAYS + 1)]
            counts = [
                select(func.count())
                .select_from(CustomerMessage)
                .where(_window(day, window))
                .scalar_subquery()
                for day in days
            ]
            before = (await session.execute(select(*counts))).one()
        return Volume(by_network, sum(int(n) for n in before) / BASELINE_DAYS)

    async def texts(self, now: datetime, window: timedelta, limit: int) -> list[str]:
        """The latest `limit` customer messages' texts of the window, for its frequent words."""
        async with self.db.read() as session:
            statement = (
                select(col(CustomerMessage.text))
                .where(
                    col(CustomerMessage.sent_at) >= now - window,
                    col(CustomerMessage.sent_at) <= now,
                )
                .order_by(col(CustomerMessage.sent_at).desc())
                .limit(limit)
            )
            return list((await session.execute(statement)).scalars())

    async def current(self) -> Spike | None:
        """The spike going on, if any."""
        async with self.db.read() as session:
            statement = select(Spike).where(col(Spike.open_slot) == OPEN)
            return (await session.execute(statement)).scalar_one_or_none()

    async def ended_since(self, since: datetime) -> bool:
        """Whether a spike ended at or after `since` (the table holds one row per spike)."""
        async with self.db.read() as session:
            statement = select(func.count()).where(col(Spike.ended_at) >= since)
            return bool((await session.execute(statement)).scalar_one())

    async def open(self, now: datetime, volume: Volume) -> int | None:
        """Start a spike; its id for the one caller that started it, else None."""
        async with self.db.session() as session:
            created: int | None = await insert_ignore(
                session,
                Spike,
                ("open_slot",),
                open_slot=OPEN,
                started_at=now,
                count=volume.count,
                baseline=volume.baseline,
            )
            return created

    async def close(self, spike_id: int, now: datetime) -> bool:
        """End the spike; True for the one caller that ended it."""
        async with self.db.session() as session:
            closed = await session.execute(
                update(Spike)
                .where(col(Spike.id) == spike_id, col(Spike.open_slot).is_not(None))
                .values(open_slot=None, ended_at=now)
            )
            return bool(closed.rowcount)  # type: ignore[attr-defined]

    async def get(self, spike_id: int) -> Spike | None:
        async with self.db.read() as session:
            return await session.get(Spike, spike_id)

    async def untold(self, since: datetime) -> list[int]:
        """Spikes started since `since` whose page, or whose end, is not posted yet."""
        async with self.db.read() as session:
            statement = (
                select(col(Spike.id))
                .where(
                    col(Spike.started_at) >= since,
                    or_(
                        col(Spike.paged_ts).is_(None),
                        col(Spike.ended_at).is_not(None) & col(Spike.ended_ts).is_(None),
                    ),
                )
                .order_by(col(Spike.id))
            )
            return [int(i) for i in (await session.execute(statement)).scalars() if i is not None]

    async def paged(self, spike_id: int, user: str | None, ts: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Spike).where(col(Spike.id) == spike_id).values(paged_user=user, paged_ts=ts)
            )

    async def told_over(self, spike_id: int, ts: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(Spike).where(col(Spike.id) == spike_id).values(ended_ts=ts)
            )
