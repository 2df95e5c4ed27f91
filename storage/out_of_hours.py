"""Out-of-hours auto-replies in SQL: claimed once per conversation per closed period.

The claim is the row (UNIQUE(conversation_id, opens_at), inserted with ON CONFLICT
DO NOTHING), so two processes that see the same closed-period message both try and
only one gets a row to send. Sending is the outbox's (`storage.outbox`).
"""

from __future__ import annotations

from datetime import datetime

from storage.core import ReplyState
from storage.db import Database, insert_ignore
from storage.models import OutOfHoursReply
from storage.outbox import Outbox


class OutOfHoursReplies(Outbox[OutOfHoursReply]):
    def __init__(self, db: Database) -> None:
        super().__init__(db, OutOfHoursReply)

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
