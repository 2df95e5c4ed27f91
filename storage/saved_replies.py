"""Saved replies in SQL: add, edit, remove, list, and the ones a conversation can use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import col, select

from storage.db import Database, insert_ignore
from storage.models import SavedReply

ALL_NETWORKS = ""  # the `network` of the text every network gets


class SavedReplyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str, network: str, text: str, user: str, now: datetime) -> bool:
        """False when (name, network) exists already (racing adds: one wins)."""
        async with self._db.session() as session:
            added = await insert_ignore(
                session,
                SavedReply,
                ("name", "network"),
                name=name,
                network=network,
                text=text,
                created_by=user,
                updated_by=user,
                created_at=now,
                updated_at=now,
            )
        return added is not None

    async def edit(self, name: str, network: str, text: str, user: str, now: datetime) -> bool:
        """False when there is no such saved reply."""
        async with self._db.session() as session:
            result = await session.execute(
                update(SavedReply)
                .where(col(SavedReply.name) == name, col(SavedReply.network) == network)
                .values(text=text, updated_by=user, updated_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def remove(self, name: str, network: str) -> bool:
        async with self._db.session() as session:
            result = await session.execute(
                delete(SavedReply).where(
                    col(SavedReply.name) == name, col(SavedReply.network) == network
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def all(self) -> list[SavedReply]:
        """Every saved reply, by name, the all-networks text before its variants."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(SavedReply).order_by(col(SavedReply.name), col(SavedReply.network))
            )
            return list(rows.scalars().all())

    async def get(self, saved_id: int) -> SavedReply | None:
        async with self._db.read() as session:
            return await session.get(SavedReply, saved_id)

    async def usable(self, networks: Sequence[str]) -> list[SavedReply]:
        """One text per name for a conversation: the variant of the first of `networks`
        (most specific first, e.g. `instagram`, `meta`) that has one, else the text for
        all networks. Names with variants for other networks only are left out."""
        wanted = [*networks, ALL_NETWORKS]
        async with self._db.read() as session:
            rows = await session.execute(
                select(SavedReply)
                .where(col(SavedReply.network).in_(wanted))
                .order_by(col(SavedReply.name))
            )
            best: dict[str, SavedReply] = {}
            for row in rows.scalars().all():
                kept = best.get(row.name)
                if kept is None or wanted.index(row.network) < wanted.index(kept.network):
                    best[row.name] = row
        return list(best.values())
