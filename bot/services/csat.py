"""Customer satisfaction: `CSAT_ENABLED` asks for a 1-5 rating when a conversation is
resolved, and records the answer.

Asking: `on_resolved` claims a question in SQL (at most one per conversation per 24
hours, `storage.csat`) unless the conversation is public (comments, X mentions) or its
reply window is closed; the dispatcher's `send_due` sends it through the adapter, which
offers the answers in the network's own way (`OutboundReply.survey_id`), and says so in
the thread. It is no team reply: it answers no turn and counts in no response figure.

Answering: `take` runs in the webhook before messages are stored. A tap on an answer
(`CustomerRating`) or a message that is only a digit 1-5, while a recent question waits
in a resolved conversation, is a rating; a message soon after a rating is its comment.
Neither is a customer message (nothing opens or reopens); each is shown in the thread
as a notice (`customer_action`, carried out by the dispatcher).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from bot.blocks import csat as blocks
from bot.config import Settings
from bot.metrics import Metrics
from bot.networks.base import (
    AnswersTaps,
    CustomerRating,
    DeliveryError,
    InboundEvent,
    InboundMessage,
    Network,
    OutboundReply,
)
from bot.networks.rating import digit_answer
from bot.networks.registry import BY_NAME
from bot.slack import Slack, SlackError
from storage.actions import ActionRepository, NewAction
from storage.core import ActionKind, ConversationStatus
from storage.csat import COMMENT_WITHIN, EVERY, CsatStore, OpenSurvey
from storage.db import Database, DatabaseUnavailable
from storage.models import Conversation, CsatSurvey
from storage.repo import backoff

log = logging.getLogger(__name__)

AUTHOR_ID = "relaydesk"
AUTHOR_NAME = "Relaydesk"
THANKS = "Thank you for your rating!"


def not_asked(conversation: Conversation, configured: bool, now: datetime) -> str | None:
    """Why this conversation gets no rating question now; None when it may."""
    descriptor = BY_NAME.get(conversation.network)
    if descriptor is None or not configured:
        return f"{conversation.network} is not configured"
    if descriptor.is_public(conversation.reply_context or {}):
        return "a public conversation"
    closes = (conversation.reply_context or {}).get("window_closes_at")
    if isinstance(closes, str) and datetime.fromisoformat(closes) <= now:
        return "the network's reply window is closed"
    return None


class Csat:
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
        self.enabled = settings.csat_enabled
        self._question = settings.csat_message
        self._store = CsatStore(db)
        self._actions = ActionRepository(db)
        self._slack = slack
        self._networks = networks
        self._clock = clock
        self._metrics = metrics
        self._taps: set[asyncio.Task[None]] = set()

    # -- asking -------------------------------------------------------------
    async def on_resolved(self, conversation: Conversation) -> None:
        """Claim the rating question of a conversation just resolved."""
        if not self.enabled or conversation.id is None:
            return
        now = self._clock()
        reason = not_asked(conversation, conversation.network in self._networks, now)
        if reason is not None:
            log.info("conversation %s: no rating question (%s)", conversation.id, reason)
            return
        try:
            claimed = await self._store.claim(conversation.id, now)
        except DatabaseUnavailable as exc:
            # The resolve itself is stored: the click must not fail for its question.
            log.warning("conversation %s: no rating question, SQL down: %s", conversation.id, exc)
            return
        if claimed:
            log.info("conversation %s: rating question claimed", conversation.id)

    async def due_conversations(self, now: datetime) -> list[int]:
        return await self._store.due_conversations(now) if self.enabled else []

    async def next_due_at(self) -> datetime | None:
        return await self._store.next_due_at() if self.enabled else None

    async def send_due(self, conversation: Conversation) -> bool:
        """Send what is due; True when a send was put off (a retry to plan for)."""
        if not self.enabled or conversation.id is None:
            return False
        put_off = False
        due = await self._store.due(conversation.id, self._clock())
        # as it is now: the dispatcher's copy may predate the resolve that asked
        fresh = await self._store.conversation(conversation.id) if due else None
        for survey in due:
            put_off |= await self._send(survey, fresh or conversation)
        return put_off

    async def _send(self, survey: CsatSurvey, conversation: Conversation) -> bool:
        assert survey.id is not None
        now = self._clock()
        if survey.attempt_at is not None:
            await self._fail(survey, conversation, "the bot stopped while sending it")
            return False
        reason = not_asked(conversation, conversation.network in self._networks, now)
        if reason is None and now - survey.created_at > EVERY:
            reason = "it could not be sent within 24 hours"
        if reason is None and conversation.status != ConversationStatus.RESOLVED:
            reason = "the conversation was reopened first"
        if reason is not None:
            await self._store.mark_failed(survey.id, reason)
            log.info("conversation %s: rating question dropped (%s)", conversation.id, reason)
            return False
        outbound = OutboundReply(
            conversation_key=conversation.external_key,
            reply_context=conversation.reply_context,
            text=self._question,
            author_id=AUTHOR_ID,
            author_name=AUTHOR_NAME,
            reply_id=survey.id,
            sent_at=now,
            automated=True,
            survey_id=survey.id,
        )
        await self._store.begin_send(survey.id, now)
        try:
            receipt = await self._networks[conversation.network].send(outbound)
        except DeliveryError as exc:
            if exc.temporary:
                self._metrics.retries.labels("network").inc()
                at = self._clock() + backoff(survey.attempts + 1, exc.retry_after)
                await self._store.retry_later(survey.id, at, exc.message)
                return True
            await self._fail(survey, conversation, exc.message)
            return False
        await self._store.mark_sent(survey.id, receipt.message_id, self._clock())
        log.info("conversation %s: rating question sent", conversation.id)
        await self._say(conversation, blocks.survey_sent(self._question))
        return False

    async def _fail(self, survey: CsatSurvey, conversation: Conversation, reason: str) -> None:
        assert survey.id is not None
        await self._store.mark_failed(survey.id, reason)
        log.warning("conversation %s: rating question failed: %s", conversation.id, reason)
        await self._say(conversation, blocks.survey_failed(reason))

    async def _say(self, conversation: Conversation, text: str) -> None:
        """The row is the record; the thread post is for people (a lost one is logged)."""
        if not (conversation.channel and conversation.thread_ts):
            return
        try:
            await self._slack.post(conversation.channel, text, thread_ts=conversation.thread_ts)
        except SlackError as exc:
            log.warning("conversation %s: rating note not posted: %s", conversation.id, exc)

    # -- answers ------------------------------------------------------------
    async def take(
        self, events: Sequence[InboundEvent], messages: list[InboundMessage]
    ) -> list[InboundMessage]:
        """Record the ratings and comments among a webhook's events; returns the
        messages that are customer messages still."""
        received_at = self._clock()
        taps = [e for e in events if isinstance(e, CustomerRating) and _storable(e.event_id)]
        for tap in (tap for tap in taps if _storable(tap.conversation_key)):
            await self._rate(tap, tap.survey_id, tap.score, min(tap.at, received_at))
            if tap.tap_id is not None:
                self._answer_tap(tap.network, tap.tap_id)
        if not self.enabled or not messages:
            return messages
        kept = [m for m in messages if not _storable(m.conversation_key)]  # refused later
        storable = [m for m in messages if _storable(m.conversation_key)]
        for network, batch in _by_network(storable).items():
            surveys = await self._store.open_surveys(
                network, [m.conversation_key for m in batch], received_at
            )
            for message in batch:
                survey = surveys.get(message.conversation_key)
                if survey is None or not await self._answers(message, survey, received_at):
                    kept.append(message)
        return kept

    async def _answers(
        self, message: InboundMessage, survey: OpenSurvey, received_at: datetime
    ) -> bool:
        """Whether the message is the survey's rating (a digit) or its comment."""
        if message.from_team or not _storable(message.message_id):
            return False
        at = min(message.sent_at, received_at)
        score = digit_answer(message.text)
        if survey.rating_id is None:
            if score is None:
                return False
            await self._rate(message, survey.survey_id, score, at)
            return True
        if message.message_id in (survey.rated_by, survey.comment_message_id):
            return True  # the rating or the comment, delivered again
        if (
            survey.comment_message_id is not None
            or survey.rated_at is None
            or at - survey.rated_at > COMMENT_WITHIN
            or not message.text.strip()
        ):
            return False
        comment = message.text.replace("\x00", "")  # PostgreSQL refuses NUL in text
        if not await self._store.attach_comment(survey.rating_id, message.message_id, comment, at):
            return False
        await self._note(
            message, f"csat:{survey.survey_id}:comment", blocks.comment_line(message.text), at
        )
        return True

    async def _rate(
        self, event: CustomerRating | InboundMessage, survey_id: int, score: int, at: datetime
    ) -> None:
        event_id = event.event_id if isinstance(event, CustomerRating) else event.message_id
        recorded = await self._store.record(
            survey_id, event.network, event.conversation_key, score, at, event_id
        )
        if recorded is None:
            log.info("%s rating for unknown survey %s ignored", event.network, survey_id)
            return
        if recorded.new:
            log.info("conversation %s: rated %s", recorded.conversation_id, recorded.score)
        # Again on a second tap or a redelivery: the notice is idempotent, and a first
        # try cut short between the two writes is completed.
        await self._note(event, f"csat:{survey_id}", blocks.rating_line(recorded.score), at)

    async def _note(
        self, event: CustomerRating | InboundMessage, event_id: str, text: str, at: datetime
    ) -> None:
        await self._actions.store(
            [
                NewAction(
                    network=event.network,
                    conversation_key=event.conversation_key,
                    event_id=event_id,
                    kind=ActionKind.NOTICE,
                    at=at,
                    received_at=self._clock(),
                    payload={"text": text.replace("\x00", "")[:1000]},
                )
            ]
        )

    def _answer_tap(self, network_name: str, tap_id: str) -> None:
        """Stop the customer's spinner, after the webhook's answer: a lost one only
        leaves the spinner to time out."""
        network = self._networks.get(network_name)
        if isinstance(network, AnswersTaps):
            task = asyncio.create_task(self._answer(network, tap_id))
            self._taps.add(task)
            task.add_done_callback(self._taps.discard)

    async def _answer(self, network: AnswersTaps, tap_id: str) -> None:
        try:
            await network.answer_tap(tap_id, THANKS)
        except DeliveryError as exc:
            log.info("tap %s not answered: %s", tap_id, exc.message)

    async def close(self) -> None:
        await asyncio.gather(*self._taps, return_exceptions=True)


def _storable(value: str) -> bool:
    """An id SQL takes (the relay refuses others with a 400 once they reach it)."""
    return len(value) <= 255 and "\x00" not in value


def _by_network(messages: Sequence[InboundMessage]) -> dict[str, list[InboundMessage]]:
    found: dict[str, list[InboundMessage]] = {}
    for message in messages:
        found.setdefault(message.network, []).append(message)
    return found
