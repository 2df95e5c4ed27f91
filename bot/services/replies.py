"""Thread messages from the team: replies to send, notes to keep, the rest to ignore."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from bot.config import Settings
from bot.markup import is_note, parse_slack_message
from bot.slack import Slack, SlackError
from storage.coordination import Coordinator
from storage.core import ReplyKind, ReplyState
from storage.models import Conversation, TeamReply
from storage.repo import Repository

log = logging.getLogger(__name__)

FILE_FIELDS = ("id", "name", "title", "mimetype", "size", "url_private_download", "url_private")
UNDO_REACTION = "hourglass"  # on a reply held for UNDO_SECONDS
# Message subtypes a person produces when writing in a thread; all others
# (edits, deletions, joins, bot messages...) are not replies.
HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
EVENT_TTL = 24 * 3600.0


class MessageEvent(TypedDict, total=False):
    """The fields read of a Slack `message` event; any may be missing (joins, edits...)."""

    subtype: str
    bot_id: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str
    blocks: list[Any]
    files: list[Any]


def slack_time(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def message_json(event: Mapping[str, Any]) -> str:
    """What is kept of a Slack message to send it later: its text, blocks and files."""
    kept: dict[str, Any] = {key: event[key] for key in ("text", "blocks") if event.get(key)}
    files = event.get("files")
    if isinstance(files, list) and files:  # only what sending reads (not thumbnails...)
        kept["files"] = [
            {key: item[key] for key in FILE_FIELDS if key in item}
            for item in files
            if isinstance(item, dict)
        ]
    return json.dumps(kept, separators=(",", ":"))


def slack_message(reply: TeamReply) -> dict[str, Any]:
    """The stored Slack message of a reply (rows stored before it was kept: the text)."""
    if reply.slack_message:
        loaded = json.loads(reply.slack_message)
        if isinstance(loaded, dict):
            return loaded
    return {"text": reply.text}


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

    async def on_message(self, event: MessageEvent) -> TeamReply | None:
        """Store a person's thread message as a reply or a note, and start sending a reply.

        Returns the stored row; None when the event is ignored: not a person's message,
        not a reply in a conversation thread, or a delivery seen before. Slack's retries
        are recognised by the reply's UNIQUE(slack_channel, slack_ts) in the same
        transaction that stores it, never by a mark set before: a retry of an event whose
        storing failed is processed in full.
        """
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id"):
            return None
        thread_ts, ts, user = event.get("thread_ts"), event.get("ts"), event.get("user")
        channel = event.get("channel")
        if not (thread_ts and ts and user and channel) or thread_ts == ts:
            return None
        text = str(event.get("text") or "")
        allowed = not self._settings.allowed_users or user in self._settings.allowed_users
        kind = ReplyKind.NOTE if is_note(parse_slack_message(event)) else ReplyKind.REPLY
        if kind == ReplyKind.NOTE:
            state = ReplyState.INTERNAL
        else:
            state = ReplyState.PENDING if allowed else ReplyState.REFUSED
        stored = await self.accept(
            channel=channel,
            thread_ts=thread_ts,
            ts=ts,
            user=user,
            text=text,
            kind=kind,
            state=state,
            message=message_json(event),
        )
        if stored is None:
            return None
        if state == ReplyState.REFUSED:
            await self._refuse(channel, thread_ts, ts, user)
        return stored[1]

    async def accept(
        self,
        *,
        channel: str,
        thread_ts: str,
        ts: str,
        user: str,
        text: str,
        kind: ReplyKind,
        state: ReplyState,
        message: str,
    ) -> tuple[Conversation, TeamReply] | None:
        """Store a team message posted in a conversation thread at `ts` as `user`'s and
        start on it: a reply is held for UNDO_SECONDS, then delivered with every outbound
        rule. For a person's own thread message and for what the bot posts on someone's
        behalf (a saved reply). None when the thread is no conversation's or `ts` was
        stored before."""
        undo = self._settings.undo_seconds if state == ReplyState.PENDING else 0
        stored = await self._repo.store_slack_reply(
            channel=channel,
            thread_ts=thread_ts,
            ts=ts,
            user_id=user,
            text=text,
            sent_at=slack_time(ts),
            kind=kind,
            state=state,
            message=message,
            not_before=slack_time(ts) + timedelta(seconds=undo) if undo else None,
        )
        if stored is None:
            return None
        conversation, reply = stored
        log.info("conversation %s: %s %s from %s", conversation.id, kind, reply.id, user)
        if state == ReplyState.PENDING and undo:
            await self._hold(channel, ts)
        if state == ReplyState.PENDING:
            await self._deliver(conversation.id or 0)
        return stored

    async def _hold(self, channel: str, ts: str) -> None:
        """Show that the reply waits UNDO_SECONDS; a courtesy, the hold is in SQL."""
        try:
            await self._slack.react(channel, ts, UNDO_REACTION)
        except SlackError as exc:
            log.warning("could not mark a held reply: %s", exc.code)

    async def _refuse(self, channel: str, thread_ts: str, ts: str, user: str) -> None:
        """Mark the message, and explain once per person per thread (the mark is dropped
        again when the explanation could not be posted)."""
        explained = f"refused:{channel}:{thread_ts}:{user}"
        try:
            await self._slack.react(channel, ts, "no_entry_sign")
            if await self._coordinator.first_seen(explained, EVENT_TTL):
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
            await self._coordinator.forget(explained)
