"""Sending the automatic messages the bot writes to a customer (the out-of-hours
auto-reply, the rating question) from their outbox (`storage.outbox`).

One send, the team replies' rules: a send cut short by a crash is failed, never
repeated; a down network is retried later with a backoff; a refusal fails it. The
thread says what became of it. No automatic message is a team reply: it answers no
turn and counts in no figure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic

from bot.metrics import Metrics
from bot.networks.base import DeliveryError, Network, OutboundReply
from bot.slack import Slack, SlackError
from storage.models import Conversation
from storage.outbox import Outbox, Row
from storage.repo import backoff

log = logging.getLogger(__name__)

AUTHOR_ID = "relaydesk"
AUTHOR_NAME = "Relaydesk"


@dataclass(frozen=True)
class AutoSender(Generic[Row]):
    """Sends one feature's automatic messages: `what` names them in the log; the notes
    are their thread posts (sent: with the text sent; failed: with the reason)."""

    outbox: Outbox[Row]
    what: str
    sent_note: Callable[[str], str]
    failed_note: Callable[[str], str]
    slack: Slack
    networks: Mapping[str, Network]
    clock: Callable[[], datetime]
    metrics: Metrics

    async def send(
        self,
        row: Row,
        conversation: Conversation,
        text: str,
        now: datetime,
        *,
        failed: str | None = None,
        dropped: str | None = None,
        survey_id: int | None = None,
    ) -> bool:
        """Send one due row; True when the send was put off (a retry to plan for).

        `failed`: why it must not go out, said in the thread; `dropped`: the same, only
        logged. Either is heeded after a send cut short, before anything is sent."""
        assert row.id is not None
        if row.attempt_at is not None:
            await self._fail(row, conversation, "the bot stopped while sending it")
            return False
        if failed is not None:
            await self._fail(row, conversation, failed)
            return False
        if dropped is not None:
            await self.outbox.mark_failed(row.id, dropped)
            log.info("conversation %s: %s dropped (%s)", conversation.id, self.what, dropped)
            return False
        network = self.networks.get(conversation.network)
        if network is None:
            await self._fail(row, conversation, f"{conversation.network} is not configured")
            return False
        outbound = OutboundReply(
            conversation_key=conversation.external_key,
            reply_context=conversation.reply_context,
            text=text,
            author_id=AUTHOR_ID,
            author_name=AUTHOR_NAME,
            reply_id=row.id,
            sent_at=now,
            automated=True,
            survey_id=survey_id,
        )
        await self.outbox.begin_send(row.id, now)
        try:
            receipt = await network.send(outbound)
        except DeliveryError as exc:
            if exc.temporary:
                self.metrics.retries.labels("network").inc()
                at = self.clock() + backoff(row.attempts + 1, exc.retry_after)
                await self.outbox.retry_later(row.id, at, exc.message)
                return True
            await self._fail(row, conversation, exc.message)
            return False
        await self.outbox.mark_sent(row.id, receipt.message_id, self.clock())
        log.info("conversation %s: %s sent", conversation.id, self.what)
        await self._say(conversation, self.sent_note(text))
        return False

    async def _fail(self, row: Row, conversation: Conversation, reason: str) -> None:
        assert row.id is not None
        await self.outbox.mark_failed(row.id, reason)
        log.warning("conversation %s: %s failed: %s", conversation.id, self.what, reason)
        await self._say(conversation, self.failed_note(reason))

    async def _say(self, conversation: Conversation, text: str) -> None:
        """The row is the record; the thread post is for people (a lost one is logged)."""
        if not (conversation.channel and conversation.thread_ts):
            return
        try:
            await self.slack.post(conversation.channel, text, thread_ts=conversation.thread_ts)
        except SlackError as exc:
            log.warning("conversation %s: %s note not posted: %s", conversation.id, self.what, exc)
