"""The out-of-hours auto-reply: `OUT_OF_HOURS_MESSAGE`, once per conversation per closed period.

The dispatcher calls `after_relay` once a conversation's new customer messages are in
Slack: a message that arrived while the desk was closed (and the desk still is) claims
the period's row in SQL, and `send_due` sends it through the network adapter, as team
replies are sent, and says so in the thread (`bot.services.outbox`, as the rating
question is sent). It is not a team reply: it answers no turn, stops no SLA clock and
counts in no figure. Public conversations (comments, mentions) never get one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from bot.blocks import conversation as blocks
from bot.config import Settings
from bot.metrics import Metrics
from bot.networks.base import Network
from bot.networks.registry import BY_NAME
from bot.services.outbox import AutoSender
from bot.slack import Slack
from storage.business_hours import BusinessHours
from storage.core import MessageState
from storage.db import Database
from storage.models import Conversation, CustomerMessage, OutOfHoursReply
from storage.out_of_hours import OutOfHoursReplies

log = logging.getLogger(__name__)


def closed_period_opening(
    hours: BusinessHours, arrived: datetime, now: datetime
) -> datetime | None:
    """The opening that ends the closed period `arrived` fell in, if the desk is still
    closed `now`; None when it was open then, or has opened since."""
    if hours.always_open or hours.is_open(arrived):
        return None
    opens = hours.next_open(arrived)
    return opens if now < opens else None


class OutOfHours:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        slack: Slack,
        networks: Mapping[str, Network],
        clock: Callable[[], datetime],
        metrics: Metrics,
    ) -> None:
        self._message = settings.out_of_hours_message
        self._hours = settings.hours
        self._replies = OutOfHoursReplies(db)
        self._sender = AutoSender(
            outbox=self._replies,
            what="out-of-hours auto-reply",
            sent_note=blocks.auto_reply_sent,
            failed_note=blocks.auto_reply_failed,
            slack=slack,
            networks=networks,
            clock=clock,
            metrics=metrics,
        )
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._message is not None and not self._hours.always_open

    async def due_conversations(self, now: datetime) -> list[int]:
        return await self._replies.due_conversations(now) if self.enabled else []

    async def next_due_at(self) -> datetime | None:
        return await self._replies.next_due_at() if self.enabled else None

    async def after_relay(
        self, conversation: Conversation, messages: Sequence[CustomerMessage]
    ) -> None:
        """Claim the closed period's auto-reply for messages that arrived while closed."""
        if not self.enabled or not messages or _public(conversation):
            return
        assert conversation.id is not None
        now = self._clock()
        arrived = [m.received_at for m in messages if m.state != MessageState.FAILED]
        openings = {closed_period_opening(self._hours, at, now) for at in arrived} - {None}
        for opens_at in sorted(o for o in openings if o is not None):
            if await self._replies.claim(conversation.id, conversation.network, opens_at, now):
                log.info("conversation %s: out-of-hours auto-reply claimed", conversation.id)

    async def send_due(self, conversation: Conversation) -> bool:
        """Send what is due; True when a send was put off (a retry to plan for)."""
        if not self.enabled or conversation.id is None:
            return False
        put_off = False
        for reply in await self._replies.due(conversation.id, self._clock()):
            put_off |= await self._send(reply, conversation)
        return put_off

    async def _send(self, reply: OutOfHoursReply, conversation: Conversation) -> bool:
        assert self._message is not None
        now = self._clock()
        opened = "the desk opened before it could be sent" if now >= reply.opens_at else None
        return await self._sender.send(reply, conversation, self._message, now, failed=opened)


def _public(conversation: Conversation) -> bool:
    descriptor = BY_NAME.get(conversation.network)
    return descriptor is not None and descriptor.is_public(conversation.reply_context or {})
