"""Customers' names and handles from the networks' profile APIs, cached in SQL.

One row per (network, customer id): what the last lookup found (`name` None when it
failed) and when. The caller decides when a row is stale; this module only keeps it
and writes a found name onto the customer's conversations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from storage.db import Database
from storage.models import Conversation, CustomerProfile


@dataclass(frozen=True)
class KnownProfile:
    name: str | None  # None: the last lookup failed
    handle: str | None
    looked_up_at: datetime


class ProfileRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, network: str, customer_id: str) -> KnownProfile | None:
        async with self.db.read() as session:
            row = await session.get(CustomerProfile, (network, customer_id))
            if row is None:
                return None
            return KnownProfile(row.name, row.handle, row.looked_up_at)

    async def save(
        self, network: str, customer_id: str, name: str | None, handle: str | None, at: datetime
    ) -> None:
        """Record a lookup (a failed one with `name=None` keeps the name found before)."""
        async with self.db.session() as session:
            assert session.bind is not None
            dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
            table = CustomerProfile.__table__  # type: ignore[attr-defined]
            found = {"name": name, "handle": handle, "looked_up_at": at}
            statement = (
                dialect.insert(table)
                .values(network=network, customer_id=customer_id, **found)
                .on_conflict_do_update(
                    index_elements=["network", "customer_id"],
                    set_=found if name is not None else {"looked_up_at": at},
                )
            )
            await session.execute(statement)

    async def show(self, conversation_id: int, name: str, handle: str | None) -> bool:
        """Put the name on the conversation; True when it changed (its root is re-rendered)."""
        async with self.db.session() as session:
            current = (
                await session.execute(
                    select(col(Conversation.customer_name), col(Conversation.customer_handle))
                    .where(col(Conversation.id) == conversation_id)
                    .with_for_update()
                )
            ).one_or_none()
            if current is None or tuple(current) == (name, handle):
                return False
            await session.execute(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(
                    customer_name=name,
                    customer_handle=handle,
                    version=col(Conversation.version) + 1,
                )
            )
            return True
