"""Services for escalation tests: real SQL, a FakeSlack, and a clock moved by hand.

Rotation used throughout: ONCALL_USERS = A, B, C; shifts of 7 days from Monday
2026-03-02 09:00 UTC. At T0 (2026-03-02 10:00 UTC) A is on call until 2026-03-09
09:00, the next in rotation is B; the manager is M. SLA 30 min, repeat 15 min.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from bot.app import Services, build_services
from bot.config import load_settings
from bot.services.escalation import Escalations
from storage.models import Conversation, Turn
from storage.repo import NewCustomerMessage
from tests.fakes import FakeSlack

INBOX = "C0INBOX01"
A, B, C = "UALICE01", "UBOB0001", "UCAROL01"
MANAGER = "UMANAGER1"
AGENT = "U0AGENT01"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def minutes(value: float) -> datetime:
    return T0 + timedelta(minutes=value)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def environment(slack: FakeSlack, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": slack.url,
        "SLACK_INBOX_CHANNEL": INBOX,
        "SLA_MINUTES": "30",
        "ESCALATION_REPEAT_MINUTES": "15",
        "ONCALL_USERS": f"{A},{B},{C}",
        "ESCALATION_MANAGER": MANAGER,
        "ONCALL_START": "2026-03-02",
        "ONCALL_HANDOFF": "09:00",
        "ONCALL_ROTATION_DAYS": "7",
        "TIMEZONE": "UTC",
        "SWEEP_SECONDS": "1",
    }
    env.update(extra)
    return {key: value for key, value in env.items() if value}


@dataclass
class Env:
    slack: FakeSlack
    services: Services
    escalations: Escalations
    clock: Clock

    async def conversation(self, key: str = "c1", at: datetime = T0) -> Conversation:
        """A Telegram conversation with a Slack thread and one unanswered turn from `at`."""
        conversation_id = await self.customer_writes(key, f"{key}-1", at)
        root = self.slack.add_message(INBOX, f"root of {key}", user=self.slack.bot_user_id)
        await self.services.repo.set_thread(conversation_id, INBOX, root["ts"])
        found = await self.services.repo.conversation(conversation_id)
        assert found is not None
        return found

    async def customer_writes(self, key: str, message_id: str, at: datetime) -> int:
        stored = await self.services.repo.store_customer_messages(
            [
                NewCustomerMessage(
                    network="telegram",
                    conversation_key=key,
                    external_id=message_id,
                    author_id=f"cust-{key}",
                    author_name="Ada",
                    author_handle="ada",
                    text="Where is my order?",
                    sent_at=at,
                    received_at=at,
                )
            ]
        )
        return stored[0].conversation_id

    async def answer(self, conversation_id: int, at: datetime) -> None:
        """What a delivered team reply leaves in SQL: the turn is answered."""
        async with self.services.db.session() as session:
            await session.execute(
                update(Turn)
                .where(col(Turn.conversation_id) == conversation_id)
                .values(answered_at=at)
            )

    async def tick(self, at: datetime) -> int:
        self.clock.now = at
        return await self.escalations.sweep()

    def dm_posts(self) -> list[dict[str, Any]]:
        """Every chat.postMessage to a DM channel, in order."""
        return [
            call.params
            for call in self.slack.calls_to("chat.postMessage")
            if str(call.params.get("channel", "")).startswith("D") and call.status == 200
        ]

    async def dm_channel(self, user: str) -> str:
        """The fake's DM channel with `user` (conversations.open is idempotent)."""
        return await self.services.slack.open_dm(user)

    async def dmed(self) -> list[str]:
        """Who received each DM, in order."""
        channels = {await self.dm_channel(user): user for user in (A, B, C, MANAGER, AGENT)}
        return [channels[str(post["channel"])] for post in self.dm_posts()]

    def thread_texts(self, conversation: Conversation) -> list[str]:
        assert conversation.thread_ts is not None
        return [m["text"] for m in self.slack.replies(INBOX, conversation.thread_ts)]

    async def pages(self, conversation_id: int) -> list[tuple[int, str, str | None]]:
        rows = await self.escalations.store.pages_of(conversation_id)
        return [(row.level, row.kind, row.target_user) for row in rows]


@asynccontextmanager
async def running(
    database_url: str, overrides: Mapping[str, str] | None = None, clock: Clock | None = None
) -> AsyncIterator[Env]:
    slack = await FakeSlack().start()
    settings = load_settings(environment(slack, database_url, **(overrides or {})), env_file=None)
    clock = clock or Clock()
    services = build_services(settings, clock=clock)
    try:
        await services.db.migrate()
        yield Env(slack, services, services.escalations, clock)
    finally:
        await services.close()
        await slack.stop()


def date_tag(at: datetime) -> str:
    """What Slack date formatting of `at` must look like (written out, not via bot.blocks)."""
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def blocks_text(params: Mapping[str, Any]) -> str:
    return json.dumps(params.get("blocks", []))
