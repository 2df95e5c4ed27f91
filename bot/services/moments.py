"""Meaningful relationship moments: a reaction or the shortcut's note on a conversation.

- `MRM_REACTION` added by a person on any message of a conversation thread records a
  moment; removing it deletes that person's reaction-made moment on that message,
  nothing else. Our bot's own reactions (it mirrors customers' reactions) never reach
  us: bolt drops events whose user is the bot user (`ignoring_self_events`).
- The shortcut `relaydesk.moment` opens a form; its submission records a moment
  with the note (keyed on the form's view id).
- Stored first (unique key: Slack's retries and other processes change nothing),
  then a short note is posted in the thread under a coordination lease with a
  re-read of `post_ts`; a note that could not be posted is tried again by `sweep`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypedDict

from bot.blocks.conversation import Block
from bot.blocks.moments import NOTE_MAX, moment_modal, moment_note, moment_removed
from bot.config import Settings
from bot.services.refs import Lookup
from bot.services.refusal import Refusal
from bot.services.replies import slack_time
from bot.slack import Slack, SlackError, SlackPermanent, SlackTemporary
from storage.coordination import Coordinator
from storage.models import Conversation, Moment, utcnow
from storage.moments import MomentStore, NewMoment
from storage.repo import Repository

log = logging.getLogger(__name__)

POST_LEASE_SECONDS = 60.0
RETRY_AFTER = timedelta(seconds=30)  # a note still unposted this long after is retried
LATEST = 3  # moments listed in /social-stats and the summary


class ReactionItem(TypedDict, total=False):
    type: str
    channel: str
    ts: str


class ReactionEvent(TypedDict, total=False):
    """`reaction_added` / `reaction_removed`: who, which emoji, on which message."""

    user: str
    reaction: str
    item: ReactionItem
    event_ts: str


def reaction_key(channel: str, ts: str, user: str) -> str:
    return f"reaction:{channel}:{ts}:{user}"


class Moments:
    def __init__(
        self,
        settings: Settings,
        store: MomentStore,
        repo: Repository,
        slack: Slack,
        coordinator: Coordinator,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._repo = repo
        self._lookup = Lookup(repo)
        self._slack = slack
        self._coordinator = coordinator
        self._clock = clock

    @property
    def store(self) -> MomentStore:
        return self._store

    # -- the reaction ---------------------------------------------------------
    def _marked(self, event: ReactionEvent) -> tuple[str, str, str] | None:
        """(channel, ts, user) when `event` is a person's MRM_REACTION on a message."""
        item = event.get("item") or {}
        reaction = str(event.get("reaction") or "").split("::", 1)[0]  # skin tones
        channel, ts, user = item.get("channel"), item.get("ts"), event.get("user")
        if reaction != self._settings.mrm_reaction or item.get("type") != "message":
            return None
        if not (channel and ts and user):
            return None
        return channel, ts, user

    async def reaction_added(self, event: ReactionEvent) -> Moment | None:
        """Record the moment (once); None when the reaction is not a moment's."""
        marked = self._marked(event)
        if marked is None:
            return None
        channel, ts, user = marked
        found = await self._thread_of(channel, ts)
        if found is None:
            return None
        conversation, thread_ts = found
        event_ts = event.get("event_ts")
        moment, created = await self._store.record(
            NewMoment(
                key=reaction_key(channel, ts, user),
                source="reaction",
                conversation_id=conversation.id or 0,
                network=conversation.network,
                customer=conversation.customer_name,
                user_id=user,
                at=slack_time(event_ts) if event_ts else self._clock(),
                note=None,
                slack_channel=channel,
                slack_ts=ts,
                thread_ts=thread_ts,
            )
        )
        if created:
            log.info("conversation %s: moment %s by %s", conversation.id, moment.id, user)
        await self.post(moment.id or 0)
        return moment

    async def reaction_removed(self, event: ReactionEvent) -> Moment | None:
        """Delete that person's reaction-made moment on that message; strike its note."""
        marked = self._marked(event)
        if marked is None:
            return None
        moment = await self._store.remove(reaction_key(*marked))
        if moment is None:
            return None
        log.info("conversation %s: moment %s removed", moment.conversation_id, moment.id)
        if moment.post_ts:
            await self._strike(moment, moment.post_ts)
        return moment

    async def _thread_of(self, channel: str, ts: str) -> tuple[Conversation, str] | None:
        """The conversation and thread of a message: a root is known in SQL; any other
        message's thread is asked of Slack (a reaction event names only the message)."""
        root = await self._repo.conversation_by_thread(channel, ts)
        if root is not None:
            return root, ts
        try:
            data = await self._slack.call("conversations.replies", channel=channel, ts=ts, limit=1)
        except SlackPermanent as exc:  # a channel or message we cannot read: not ours
            log.info("reaction on %s/%s: no thread (%s)", channel, ts, exc.code)
            return None
        messages = data.get("messages") or []
        thread_ts = messages[0].get("thread_ts") if messages else None
        if not isinstance(thread_ts, str) or thread_ts == ts:
            return None
        conversation = await self._repo.conversation_by_thread(channel, thread_ts)
        return (conversation, thread_ts) if conversation is not None else None

    # -- the shortcut -----------------------------------------------------------
    async def form(self, channel: str, ts: str, thread_ts: str | None) -> Block:
        """The shortcut's form for a message; `Refusal` when it is no conversation's."""
        conversation = await self._lookup.message(channel, ts, thread_ts)
        return moment_modal(conversation.id or 0, channel, ts, thread_ts or ts)

    async def record_note(
        self,
        *,
        conversation_id: int,
        channel: str,
        ts: str,
        thread_ts: str,
        user: str,
        note: str,
        form_id: str,
    ) -> str:
        """The form submitted: record the moment (once per form); the answer, or `Refusal`."""
        note = note.strip()
        if not note:
            raise Refusal("Write a short note about the moment.")
        if len(note) > NOTE_MAX:
            raise Refusal(f"Keep the note under {NOTE_MAX} characters.")
        conversation = await self._lookup.number(conversation_id)
        moment, created = await self._store.record(
            NewMoment(
                key=f"shortcut:{form_id}",
                source="shortcut",
                conversation_id=conversation_id,
                network=conversation.network,
                customer=conversation.customer_name,
                user_id=user,
                at=self._clock(),
                note=note,
                slack_channel=channel,
                slack_ts=ts,
                thread_ts=thread_ts,
            )
        )
        if created:
            log.info("conversation %s: moment %s by %s", conversation_id, moment.id, user)
        await self.post(moment.id or 0)
        return f"Moment recorded in #{conversation_id}."

    # -- the note in the thread ---------------------------------------------------
    async def post(self, moment_id: int) -> bool:
        """Post the moment's note in its thread unless posted; True if this call did."""
        lease = await self._coordinator.lock(f"moment:post:{moment_id}", POST_LEASE_SECONDS)
        if lease is None:
            return False
        try:
            moment = await self._store.get(moment_id)
            if moment is None or moment.post_ts is not None:
                return False
            try:
                ts = await self._slack.post(
                    moment.slack_channel, moment_note(moment), thread_ts=moment.thread_ts
                )
            except SlackTemporary as exc:
                log.warning("moment %s: note not posted yet: %s", moment_id, exc.code)
                return False
            except SlackPermanent as exc:
                log.warning("moment %s: note cannot be posted: %s", moment_id, exc.code)
                ts = ""  # recorded all the same; never tried again
            if not await self._store.posted(moment_id, ts) and ts:
                await self._strike(moment, ts)  # its reaction was removed meanwhile
            return True
        finally:
            await self._coordinator.release(lease)

    async def _strike(self, moment: Moment, ts: str) -> None:
        try:
            await self._slack.update(moment.slack_channel, ts, moment_removed(moment))
        except SlackError as exc:
            log.warning("moment %s: note not struck out: %s", moment.id, exc.code)

    async def sweep(self, now: datetime) -> int:
        """The scheduler's job: post the notes that could not be posted at once."""
        posted = 0
        for moment_id in await self._store.unposted(now - RETRY_AFTER):
            posted += await self.post(moment_id)
        return posted

    # -- reading --------------------------------------------------------------------
    async def between(self, since: datetime, until: datetime) -> Sequence[Moment]:
        return await self._store.between(since, until)
