"""Build conversations through the real Repository, with exact timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col

from storage.core import ReplyKind, ReplyState
from storage.db import Database
from storage.inbound import Routed
from storage.models import Conversation, SlackThread, utcnow
from storage.repo import NewCustomerMessage, Repository

INBOX = "C0INBOX01"


def slack_ts(at: datetime) -> str:
    """The Slack `ts` of a message posted at `at` (seconds.microseconds)."""
    return f"{at.timestamp():.6f}"


class Builder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.repo = Repository(db)
        self.ids: dict[str, int] = {}
        self.threads: dict[int, str] = {}
        self._serial = 0

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    async def customer(
        self,
        key: str,
        at: datetime,
        *,
        network: str = "telegram",
        name: str = "Ann",
        arrived: datetime | None = None,
        routed: Routed | None = None,
    ) -> int:
        """A customer message sent at `at` (network time), arriving at `arrived`;
        `routed`: what routing rules decide for a conversation it opens."""
        stored = await self.repo.store_customer_messages(
            [
                NewCustomerMessage(
                    network=network,
                    conversation_key=key,
                    external_id=f"m{self._next()}",
                    author_id=f"a-{key}",
                    author_name=name,
                    text="hello",
                    sent_at=at,
                    received_at=arrived or at,
                )
            ],
            route=(lambda _: routed) if routed is not None else None,
        )
        conversation_id = stored[0].conversation_id
        if conversation_id not in self.threads:
            thread_ts = f"1700000000.{self._next():06d}"
            await self._set_thread(conversation_id, thread_ts)
            self.threads[conversation_id] = thread_ts
        self.ids[key] = conversation_id
        return conversation_id

    async def _set_thread(self, conversation_id: int, thread_ts: str) -> None:
        """What `Repository.set_thread` records (it fails as committed: its INSERT
        ... RETURNING asks `slack_thread` for an `id` column it does not have)."""
        async with self.db.session() as session:
            session.add(
                SlackThread(
                    channel=INBOX,
                    thread_ts=thread_ts,
                    conversation_id=conversation_id,
                    created_at=utcnow(),
                )
            )
            await session.execute(
                update(Conversation)
                .where(col(Conversation.id) == conversation_id)
                .values(channel=INBOX, thread_ts=thread_ts)
            )

    async def reply(
        self, key: str, at: datetime, *, outcome: str = "sent", user: str = "U0AGENT01"
    ) -> None:
        """A team message with Slack ts `at`: `sent`, `failed`, `note` or `pending`."""
        conversation_id = self.ids[key]
        kind, state = (
            (ReplyKind.NOTE, ReplyState.INTERNAL)
            if outcome == "note"
            else (ReplyKind.REPLY, ReplyState.PENDING)
        )
        stored = await self.repo.store_slack_reply(
            channel=INBOX,
            thread_ts=self.threads[conversation_id],
            ts=slack_ts(at),
            user_id=user,
            text="hi",
            sent_at=at,
            kind=kind,
            state=state,
        )
        assert stored is not None
        reply = stored[1]
        assert reply.id is not None
        if outcome == "sent":
            await self.repo.mark_reply_sent(reply.id, f"x{reply.id}", at + timedelta(seconds=1))
        elif outcome == "failed":
            await self.repo.mark_reply_failed(reply.id, "blocked by the user")

    async def set_team(self, key: str, team: str | None) -> None:
        """A handoff, as far as the stats care: the conversation's current team."""
        async with self.db.session() as session:
            await session.execute(
                update(Conversation).where(col(Conversation.id) == self.ids[key]).values(team=team)
            )

    async def resolve(self, key: str, at: datetime) -> None:
        result = await self.repo.resolve(self.ids[key], "U0AGENT01", at)
        assert result.ok
