"""Thread messages from the team: replies to send, notes to keep, the rest to ignore."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.slack import Slack, SlackError
from storage.coordination import Coordinator
from storage.core import ReplyKind, ReplyState
from storage.repo import Repository

log = logging.getLogger(__name__)

NOTE_PREFIXES = ("note:", "private:")
# Message subtypes a person produces when writing in a thread; all others
# (edits, deletions, joins, bot messages...) are not replies.
HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
EVENT_TTL = 24 * 3600.0


def slack_time(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def is_note(text: str) -> bool:
    return text.lstrip().lower().startswith(NOTE_PREFIXES)


class Replies:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        slack: Slack,
        coordinator: Coordinator,
        deliver: Callable[[int], Awaitable[None]],
    ) -> None:
        """`deliver(conversation_id)` starts delivering a stored reply (`Dispatcher.kick`)."""
        self._settings = settings
        self._repo = repo
        self._slack = slack
        self._coordinator = coordinator
        self._deliver = deliver

    async def on_message(self, event: Mapping[str, Any], event_id: str | None) -> str:
        """Handle a `message` event; returns what was done (for logs and tests)."""
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
            return "ignored: not a person's message"
        thread_ts, ts, user = event.get("thread_ts"), event.get("ts"), event.get("user")
        channel = event.get("channel")
        if not (thread_ts and ts and user and channel) or thread_ts == ts:
            return "ignored: not a thread reply"
        if event_id and not await self._coordinator.first_seen(
            f"slack-event:{event_id}", EVENT_TTL
        ):
            return "ignored: duplicate delivery"
        text = str(event.get("text") or "")
        allowed = not self._settings.allowed_users or user in self._settings.allowed_users
        kind = ReplyKind.NOTE if is_note(text) else ReplyKind.REPLY
        if kind == ReplyKind.NOTE:
            state = ReplyState.INTERNAL
        else:
            state = ReplyState.PENDING if allowed else ReplyState.REFUSED
        stored = await self._repo.store_slack_reply(
            channel=channel,
            thread_ts=thread_ts,
            ts=ts,
            user_id=user,
            text=text,
            sent_at=slack_time(ts),
            kind=kind,
            state=state,
        )
        if stored is None:
            return "ignored: not a conversation thread, or already stored"
        conversation, reply = stored
        log.info("conversation %s: %s %s from %s", conversation.id, kind, reply.id, user)
        if state == ReplyState.PENDING:
            await self._deliver(conversation.id or 0)
        elif state == ReplyState.REFUSED:
            await self._refuse(channel, thread_ts, ts, user)
        return f"stored {kind} ({state})"

    async def _refuse(self, channel: str, thread_ts: str, ts: str, user: str) -> None:
        """Mark the message, and explain once per person per thread."""
        try:
            await self._slack.react(channel, ts, "no_entry_sign")
            if await self._coordinator.first_seen(
                f"refused:{channel}:{thread_ts}:{user}", EVENT_TTL
            ):
                await self._slack.ephemeral(
                    channel,
                    user,
                    "Your message was not sent to the customer: only the people listed in "
                    "ALLOWED_USERS may answer customers. Start it with `note:` to keep it as "
                    "an internal note, or ask an admin to add you.",
                    thread_ts=thread_ts,
                )
        except SlackError as exc:
            log.warning("could not explain a refused reply to %s: %s", user, exc.code)
