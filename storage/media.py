"""Customer files waiting to be uploaded into Slack: one row each, uploaded once.

The dispatcher creates the rows when their message is posted (idempotently, keyed by
message and position) and works through them under the conversation's lease.
Which attachments are files is decided by the caller; this module only keeps state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlmodel import col

from storage.core import MessageState
from storage.db import Database, insert_ignore
from storage.models import PENDING, CustomerMedia, utcnow


@dataclass(frozen=True)
class NewMedia:
    message_id: int
    position: int
    conversation_id: int
    attachment: dict[str, Any]


class MediaRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, items: Sequence[NewMedia]) -> None:
        """Record files to upload; a file already recorded is left as it is."""
        if not items:
            return
        async with self.db.session() as session:
            for item in items:
                await insert_ignore(
                    session,
                    CustomerMedia,
                    ("message_id", "position"),
                    message_id=item.message_id,
                    position=item.position,
                    conversation_id=item.conversation_id,
                    attachment=item.attachment,
                    state=MessageState.PENDING,
                    attempts=0,
                    created_at=utcnow(),
                )

    async def due(self, conversation_id: int, now: datetime) -> list[CustomerMedia]:
        """The conversation's files due now, in message order."""
        async with self.db.read() as session:
            rows = await session.execute(
                select(CustomerMedia)
                .where(
                    col(CustomerMedia.conversation_id) == conversation_id,
                    text(PENDING),
                    or_(
                        col(CustomerMedia.next_attempt_at).is_(None),
                        col(CustomerMedia.next_attempt_at) <= now,
                    ),
                )
                .order_by(col(CustomerMedia.message_id), col(CustomerMedia.position))
            )
            return list(rows.scalars())

    async def begin_share(self, media_id: int, slack_file_id: str) -> None:
        """Slack is about to be asked to share this upload: a retry looks for it first."""
        await self._set(media_id, slack_file_id=slack_file_id)

    async def posted(self, media_id: int) -> None:
        await self._set(media_id, state=MessageState.POSTED, last_error=None)

    async def failed(self, media_id: int, reason: str) -> None:
        """Not uploadable (too large, gone, refused): said in the thread, not retried."""
        await self._set(media_id, state=MessageState.FAILED, last_error=reason)

    async def retry_later(self, media: CustomerMedia, at: datetime, error: str) -> None:
        await self._set(
            media.id or 0, attempts=media.attempts + 1, next_attempt_at=at, last_error=error
        )

    async def _set(self, media_id: int, **values: Any) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(CustomerMedia).where(col(CustomerMedia.id) == media_id).values(**values)
            )
