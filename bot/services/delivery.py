"""The dispatcher: relays stored work to Slack and to the networks, with retries.

All pending work lives in SQL (`state = 'pending'`, `next_attempt_at`), so a
restart simply picks it up again. One conversation is handled by one worker at
a time across processes (a coordination lease), which keeps its messages in
order and makes "one root per conversation" hold. Pacing (posts per channel,
Slack's Retry-After) lives in `bot.slack`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bot.blocks import conversation as blocks
from bot.config import Settings
from bot.markup import InternalNote, OverLimit, PreparedReply
from bot.metrics import Metrics
from bot.networks.base import (
    Attachment,
    DeliveryError,
    MediaStream,
    MediaUnavailable,
    Network,
    NotSupported,
    OutboundReply,
    OutgoingFile,
)
from bot.networks.media import is_media
from bot.services.actions import CustomerActions
from bot.services.csat import Csat
from bot.services.file_links import file_link
from bot.services.out_of_hours import OutOfHours
from bot.services.outbound import (
    SharedFile,
    megabytes,
    outbound_messages,
    prepare_for,
    shared_files,
    with_caption,
)
from bot.services.profiles import Profiles
from bot.services.relay import WAKE_TOPIC
from bot.services.replies import UNDO_REACTION, slack_message
from bot.slack import Slack, SlackError, SlackPermanent, SlackTemporary, SlackThreadGone
from storage.actions import ActionRepository
from storage.coordination import CoordinationUnavailable, Coordinator, Lease
from storage.core import MessageState, ReplyKind, ReplyState
from storage.db import DatabaseUnavailable
from storage.media import MediaRepository, NewMedia
from storage.models import Conversation, CustomerMedia, CustomerMessage, TeamReply, utcnow
from storage.repo import HandoffRepository, Repository, backoff

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0  # renewed while working; a dead worker's expires soon
SCAN_EVERY = 0.1  # seconds: at most one scan for due work per this interval
GIVE_UP_AFTER = timedelta(hours=24)
LOOK_SINCE = timedelta(minutes=5)  # a post in doubt is looked for from this before its try
# Slack takes files of up to 1 GB; ours stop well below, as an upload holds the
# conversation's worker while it runs.
MAX_FILE_BYTES = 256 * 1024 * 1024
MEDIA_TRIES = 5  # a file that cannot be fetched or uploaded after these is reported
SPOOL_CHUNK = 256 * 1024


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        repo: Repository,
        slack: Slack,
        networks: Mapping[str, Network],
        coordinator: Coordinator,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = 8,
        metrics: Metrics | None = None,
        csat: Csat | None = None,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._slack = slack
        self._networks = networks
        self._coordinator = coordinator
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._handoffs = HandoffRepository(repo)
        self._actions = CustomerActions(
            repo=ActionRepository(repo.db), slack=slack, clock=clock, scheduled=self._scheduled
        )
        self._media = MediaRepository(repo.db)
        self._profiles = Profiles(repo.db, networks, clock)
        self._metrics = metrics or Metrics()
        self._out_of_hours = OutOfHours(
            settings=settings,
            db=repo.db,
            slack=slack,
            networks=networks,
            clock=clock,
            metrics=self._metrics,
        )
        self._csat = csat
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()  # found due again while its worker was running
        self._draining = False
        self._running = False

    # -- the loop ------------------------------------------------------------
    async def run(self) -> None:
        """Work until cancelled: scan on every publish and at the earliest retry time.

        Each due conversation gets its own worker task, so new work starts at once
        instead of waiting behind other conversations' Slack calls. Workers are not
        cancelled with the loop until `drain()` has let them finish (bounded), so a
        Slack post is not abandoned before its result is recorded.
        """
        waiter = self._coordinator.waiter(WAKE_TOPIC)
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while True:
                scanned_at = loop.time()
                await waiter.wait(await self._scan())
                # A burst of wake-ups (every stored batch of webhooks publishes one) is
                # one scan per SCAN_EVERY: new work waits at most that long to start.
                await asyncio.sleep(max(0.0, scanned_at + SCAN_EVERY - loop.time()))
        finally:
            self._running = False
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()  # drain() had its chance; never leave one running
            await asyncio.gather(*workers, return_exceptions=True)
            await waiter.close()

    async def _scan(self) -> float:
        """Start a worker for each due conversation; returns how long to wait for the next."""
        try:
            now = self._clock()
            for conversation_id in await self._repo.due_conversations(now):
                self._start(conversation_id)
            for conversation_id in await self._out_of_hours.due_conversations(now):
                self._start(conversation_id)
            for conversation_id in await self._csat.due_conversations(now) if self._csat else []:
                self._start(conversation_id)
            return await self._idle_timeout()
        except (DatabaseUnavailable, CoordinationUnavailable) as exc:
            log.warning("dispatcher paused: %s", exc)
        except Exception:
            # A supervisor boundary: the loop must outlive any one failure; the
            # work stays pending in SQL and the next scan tries again.
            log.exception("dispatcher scan failed; retrying")
        return 2.0

    async def kick(self, conversation_id: int) -> None:
        """New work in one conversation: start on it here at once, without a scan.

        Other processes are woken only when this one cannot take the work: it does not
        dispatch, or another process's worker holds the conversation and must look again.
        """
        if self._running and not self._draining:
            self._start(conversation_id, kicked=True)
        else:
            await self._coordinator.publish(WAKE_TOPIC)

    def _start(self, conversation_id: int, kicked: bool = False) -> None:
        if self._draining:
            return
        if conversation_id in self._workers:
            self._again.add(conversation_id)
            return
        self._workers[conversation_id] = asyncio.create_task(
            self._work(conversation_id, kicked), name=f"relaydesk-conversation-{conversation_id}"
        )

    async def _work(self, conversation_id: int, kicked: bool) -> None:
        """Process the conversation, again if it became due meanwhile."""
        try:
            while True:
                self._again.discard(conversation_id)
                if not await self._guarded(conversation_id) and kicked:
                    await self._coordinator.publish(WAKE_TOPIC)  # for the holder elsewhere
                if conversation_id not in self._again or self._draining:
                    return
        except (DatabaseUnavailable, CoordinationUnavailable) as exc:
            log.warning("conversation %s paused: %s", conversation_id, exc)
        finally:
            self._again.discard(conversation_id)
            del self._workers[conversation_id]

    async def drain(self, timeout: float) -> None:
        """Start nothing new and let the workers in flight finish (bounded)."""
        self._draining = True
        if self._workers:
            await asyncio.wait(set(self._workers.values()), timeout=timeout)

    async def _idle_timeout(self) -> float:
        due = min(
            (
                at
                for at in (
                    await self._repo.next_due_at(),
                    await self._out_of_hours.next_due_at(),
                    await self._csat.next_due_at() if self._csat else None,
                )
                if at is not None
            ),
            default=None,
        )
        ceiling = min(self._settings.sweep_seconds, 5.0)
        if due is None:
            return ceiling
        return max(0.05, min(ceiling, (due - self._clock()).total_seconds()))

    async def _scheduled(self) -> None:
        """A retry was put off: wake the loops (every process) to plan for its time."""
        await self._coordinator.publish(WAKE_TOPIC)

    async def _guarded(self, conversation_id: int) -> bool:
        """One worker per conversation: a Redis (or in-memory) lease as the fast path,
        kept alive while working, and a SQL advisory lock as the fence.

        Returns False when another worker holds the conversation."""
        async with self._slots:
            lease = await self._coordinator.lock(f"conversation:{conversation_id}", LEASE_SECONDS)
            if lease is None:
                return False
            keepalive = asyncio.create_task(self._keep(lease))
            try:
                async with self._repo.db.fence(conversation_id) as ours:
                    if not ours:
                        return False
                    await self.process(conversation_id)
            except SlackError as exc:
                log.warning("conversation %s: Slack %s; will retry", conversation_id, exc)
            except (DatabaseUnavailable, CoordinationUnavailable):
                raise
            except Exception:
                # A supervisor boundary: a bug met in one conversation must not stop
                # the relay for all others. Its work stays pending in SQL.
                log.exception("conversation %s: unexpected error; will retry", conversation_id)
            finally:
                keepalive.cancel()
                await self._coordinator.release(lease)
            return True

    async def _keep(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._coordinator.extend(lease, LEASE_SECONDS):
                    log.warning("lost the lease %s; the SQL fence still guards", lease.key)
                    return
            except CoordinationUnavailable as exc:
                log.warning("cannot renew the lease %s: %s", lease.key, exc)

    # -- one conversation ------------------------------------------------------
    async def process(self, conversation_id: int) -> None:
        work = await self._repo.due_work(conversation_id, self._clock())
        if work is None:
            return
        conversation = work.conversation
        handed_off = conversation.thread_ts is None and conversation.channel is not None
        if handed_off:
            await self._post_handoff_root(conversation)
        if work.messages or work.echoes:  # before a root or a post shows the customer
            await self._profiles.name(conversation)
        if work.messages:
            await self._relay(conversation_id, work.messages)
        for reply in work.replies:
            await self._deliver(reply, conversation)
        for echo in work.echoes:
            await self._show_inbox_reply(echo)
        for reply in work.unwarned:
            if reply.state == ReplyState.UNCERTAIN:
                await self._tell_in_doubt(reply)
            else:
                await self._fail(reply, reply.last_error or "the network reported a failure")
        await self._relay_media(conversation_id)
        if work.actions:  # after the posts and sends above: their targets are in Slack now
            fresh = await self._repo.conversation(conversation_id) or conversation
            await self._actions.run(fresh, work.actions)
        if (
            handed_off
            or work.messages
            or work.replies
            or work.echoes
            or work.unwarned
            or work.actions
        ):
            # what this pass changed (thread, version) since the work was read
            conversation = await self._repo.conversation(conversation_id) or conversation
        if conversation.thread_ts and conversation.rendered_version < conversation.version:
            await self._render_root(conversation)
        await self._auto_reply(conversation, work.messages)
        if self._csat is not None and await self._csat.send_due(conversation):
            await self._scheduled()

    async def _auto_reply(
        self, conversation: Conversation, messages: Sequence[CustomerMessage]
    ) -> None:
        """The out-of-hours auto-reply: decided once the new messages are in Slack."""
        if conversation.thread_ts:
            await self._out_of_hours.after_relay(conversation, messages)
            if await self._out_of_hours.send_due(conversation):
                await self._scheduled()

    async def _relay(self, conversation_id: int, messages: Sequence[CustomerMessage]) -> None:
        """Post the messages in order: a root first if there is none, then thread posts.

        A post Slack refuses for good fails its messages (said in the thread) and the
        next ones go on; a temporary failure puts the rest off, in order."""
        conversation = await self._repo.conversation(conversation_id)
        assert conversation is not None
        try:
            if conversation.thread_ts is None:
                conversation = await self._first_root(conversation, messages[0])
        except SlackTemporary as exc:
            await self._later(conversation, messages, exc, exc.retry_after)
            return
        except SlackError as exc:
            # e.g. not_in_channel: keep the messages and retry; an admin must act.
            log.error("conversation %s: cannot post to Slack: %s", conversation_id, exc.code)
            await self._later(conversation, messages, exc, None)
            return
        await self._post_in_thread(conversation, messages)

    async def _first_root(self, conversation: Conversation, first: CustomerMessage) -> Conversation:
        """The conversation's root; it quotes `first`, whose rest (if any) the thread gets."""
        try:
            conversation = await self._post_root(conversation, note=None, first=first)
        except SlackPermanent as exc:
            if exc.fixable:
                raise
            # Slack refused the root's blocks: a plain root still makes the thread.
            log.error("conversation %s: root refused (%s); plain root", conversation.id, exc.code)
            conversation = await self._post_root(conversation, note=None, plain=True)
            await self._refused(conversation, [first], exc.code)
            return conversation
        assert conversation.channel and conversation.thread_ts
        first.slack_channel, first.slack_ts = conversation.channel, conversation.thread_ts
        return conversation

    async def _post_in_thread(
        self, conversation: Conversation, messages: Sequence[CustomerMessage]
    ) -> None:
        assert conversation.id is not None and conversation.channel and conversation.thread_ts
        pending = [m for m in messages if m.state == MessageState.PENDING]
        shown = [
            m
            for m in pending
            if m.slack_ts == conversation.thread_ts and not blocks.root_rest(m.text)
        ]
        if shown:  # the root holds all of it
            await self._posted(shown, conversation.channel, conversation.thread_ts)
        pending = [m for m in pending if m.id not in {s.id for s in shown}]
        whole, parts = await self._found_posts(conversation, pending)
        for made_ts, made in whole.items():
            await self._posted(made, conversation.channel, made_ts)
        done = {m.id for made in whole.values() for m in made}
        pending = [m for m in pending if m.id not in done]
        by_id = {m.id: m for m in pending}
        broadcast = any(message.broadcast for message in pending)
        posts = blocks.customer_posts(pending, conversation.thread_ts, conversation.customer_id)
        first_ts = {m.id: m.slack_ts for m in pending if m.slack_ts == conversation.thread_ts}
        failed: set[int] = set()
        for index, post in enumerate(posts):
            if failed.issuperset(post.message_ids):
                continue  # an earlier part of this message was refused
            posted = [by_id[i] for i in post.message_ids]
            part_ts = parts.get(post.key)
            if part_ts is not None:
                ts = part_ts
            else:
                try:
                    conversation, ts = await self._thread_post(conversation, post, broadcast)
                except SlackTemporary as exc:
                    rest = self._unposted(posts[index:], by_id, failed)
                    await self._later(conversation, rest, exc, exc.retry_after)
                    return
                except SlackPermanent as exc:
                    if exc.fixable:
                        log.error("conversation %s: cannot post: %s", conversation.id, exc.code)
                        rest = self._unposted(posts[index:], by_id, failed)
                        await self._later(conversation, rest, exc, None)
                        return
                    await self._refused(conversation, posted, exc.code)
                    failed.update(post.message_ids)
                    continue
            first_ts.setdefault(post.message_ids[0], ts)
            if post.part == post.parts - 1:
                assert conversation.channel
                await self._posted(
                    posted, conversation.channel, first_ts[post.message_ids[0]] or ts
                )

    @staticmethod
    def _unposted(
        posts: Sequence[blocks.Post], by_id: Mapping[int | None, CustomerMessage], failed: set[int]
    ) -> list[CustomerMessage]:
        ids = dict.fromkeys(i for post in posts for i in post.message_ids if i not in failed)
        return [by_id[i] for i in ids]

    async def _thread_post(
        self, conversation: Conversation, post: blocks.Post, broadcast: bool
    ) -> tuple[Conversation, str]:
        """One thread post (recorded as in flight first); a new root if the thread is gone."""
        assert conversation.id is not None and conversation.channel and conversation.thread_ts
        await self._repo.begin_post(list(post.message_ids), self._clock())
        metadata = blocks.post_metadata(conversation.id, post)
        try:
            ts = await self._slack.post(
                conversation.channel,
                post.text,
                thread_ts=conversation.thread_ts,
                broadcast=broadcast,
                metadata=metadata,
            )
        except SlackThreadGone as exc:
            log.warning("conversation %s: thread gone (%s); new root", conversation.id, exc.code)
            conversation = await self._post_root(
                conversation,
                note=":information_source: The earlier thread of this conversation was deleted "
                "or moved, so it continues here.",
                channel=self._settings.inbox_channel(conversation.network)
                if exc.code == "channel_not_found"
                else conversation.channel,
            )
            assert conversation.channel and conversation.thread_ts
            ts = await self._slack.post(
                conversation.channel,
                post.text,
                thread_ts=conversation.thread_ts,
                broadcast=broadcast,
                metadata=metadata,
            )
        return conversation, ts

    async def _found_posts(
        self, conversation: Conversation, messages: Sequence[CustomerMessage]
    ) -> tuple[dict[str, list[CustomerMessage]], dict[tuple[int, int], str]]:
        """Posts of messages in doubt that Slack took after all: whole posts (ts -> their
        messages) and parts of long messages ((message id, part) -> ts)."""
        doubt = [m.attempt_at for m in messages if m.attempt_at is not None]
        if not doubt:
            return {}, {}
        assert conversation.id is not None and conversation.channel and conversation.thread_ts
        found = await self._slack.find_posts(
            conversation.channel,
            blocks.METADATA_EVENT,
            {"conversation_id": conversation.id},
            oldest=_slack_ts(min(doubt) - LOOK_SINCE),
            thread_ts=conversation.thread_ts,
        )
        by_id = {m.id: m for m in messages}
        whole: dict[str, list[CustomerMessage]] = {}
        parts: dict[tuple[int, int], str] = {}
        for post in found:
            payload = post["metadata"]["event_payload"]
            ids = [int(i) for i in str(payload.get("message_ids", "")).split(",") if i]
            if int(payload.get("parts", 1)) > 1:
                parts[(int(payload["message_id"]), int(payload.get("part", 0)))] = post["ts"]
            elif ids and all(i in by_id for i in ids):
                whole[post["ts"]] = [by_id[i] for i in ids]
        if whole or parts:
            log.info("conversation %s: %d post(s) found already made", conversation.id, len(found))
        return whole, parts

    async def _post_root(
        self,
        conversation: Conversation,
        note: str | None,
        channel: str | None = None,
        *,
        first: CustomerMessage | None = None,
        plain: bool = False,
    ) -> Conversation:
        """Post (or find, after a crash or a timeout) the conversation's root and record it.

        `first`: the message the root quotes (its rest goes to the thread); `plain`:
        no blocks, for when Slack refused them."""
        assert conversation.id is not None
        channel = (
            channel
            or conversation.channel
            or self._settings.root_channel(conversation.network, conversation.team)
        )
        text = blocks.root_fallback(conversation)
        root = None if plain else self._root_blocks(conversation, note)
        ts = await self._root_once(conversation, channel, text, root, kind="root")
        await self._repo.set_thread(
            conversation.id, channel, ts, first.id if first is not None else None
        )
        refreshed = await self._repo.conversation(conversation.id)
        assert refreshed is not None
        return refreshed

    async def _root_once(
        self,
        conversation: Conversation,
        channel: str,
        text: str,
        root: list[blocks.Block] | None,
        **match: Any,
    ) -> str:
        """A root post, at most once where it can be known: an earlier try that may have
        succeeded (recorded in SQL) is looked for in the channel first; every root found
        beyond the first is linked to the conversation, so replies in it count."""
        assert conversation.id is not None
        if conversation.root_attempt_at is not None:
            found = await self._slack.find_posts(
                channel,
                blocks.METADATA_EVENT,
                {"conversation_id": conversation.id, **match},
                oldest=_slack_ts(conversation.root_attempt_at - LOOK_SINCE),
            )
            for extra in found[1:]:
                await self._repo.link_thread(conversation.id, channel, extra["ts"])
            if found:
                log.info("conversation %s: root found already posted", conversation.id)
                return str(found[0]["ts"])
        await self._repo.begin_root(conversation.id, self._clock())
        return await self._slack.post(
            channel, text, blocks=root, metadata=blocks.post_metadata(conversation.id, **match)
        )

    def _root_blocks(
        self, conversation: Conversation, note: str | None = None
    ) -> list[blocks.Block]:
        """The root with the network's tone guidance, and when a closed desk opens."""
        hours, now = self._settings.hours, self._clock()
        return blocks.root_blocks(
            conversation,
            self._settings.teams,
            note=note,
            tone=self._settings.tones.get(conversation.network),
            opens_at=None if hours.is_open(now) else hours.next_open(now),
        )

    async def _post_handoff_root(self, conversation: Conversation) -> None:
        """After a handoff: a new root in the team's channel, and the old root points to it."""
        assert conversation.id is not None and conversation.channel
        handoff = await self._handoffs.latest(conversation.id)
        assert handoff is not None and handoff.id is not None
        earlier = None
        if handoff.old_channel and handoff.old_ts:
            earlier = await self._slack.permalink(handoff.old_channel, handoff.old_ts)
        note = blocks.handoff_note(handoff.by_user, handoff.to_team, handoff.note, earlier)
        root = self._root_blocks(conversation, note)
        recent = await self._digest(conversation.id)
        if recent is not None:
            root.insert(-1, recent)
        ts = await self._root_once(
            conversation,
            conversation.channel,
            blocks.root_fallback(conversation),
            root,
            kind="root",
            handoff_id=handoff.id,
        )
        await self._repo.set_thread(conversation.id, conversation.channel, ts)
        await self._handoffs.set_new_thread(handoff.id, conversation.channel, ts)
        log.info("conversation %s handed off to %s", conversation.id, handoff.to_team)
        if handoff.old_channel and handoff.old_ts:
            new_thread = await self._slack.permalink(conversation.channel, ts)
            try:
                await self._slack.update(
                    handoff.old_channel,
                    handoff.old_ts,
                    blocks.root_fallback(conversation),
                    blocks.moved_root_blocks(
                        conversation, handoff.by_user, handoff.to_team, new_thread
                    ),
                )
            except SlackThreadGone:
                log.info("conversation %s: the earlier root is gone", conversation.id)

    async def _digest(self, conversation_id: int) -> blocks.Block | None:
        lines = [
            (m.sent_at, f"*{blocks.escape(m.author_name)}*", m.text)
            for m in await self._repo.messages(conversation_id)
        ] + [
            (r.sent_at, f"<@{r.user_id}>" if r.source == "slack" else f"*{r.user_name}*", r.text)
            for r in await self._repo.replies(conversation_id)
            if r.kind == ReplyKind.REPLY and r.state == ReplyState.SENT
        ]
        return blocks.digest(lines)

    async def _posted(self, messages: Sequence[CustomerMessage], channel: str, ts: str) -> None:
        await self._record_media(messages)
        await self._repo.mark_posted([m.id or 0 for m in messages], channel, ts)
        now = self._clock()
        for message in messages:
            self._metrics.webhook_to_slack.observe((now - message.received_at).total_seconds())

    async def _later(
        self,
        conversation: Conversation,
        messages: Sequence[CustomerMessage],
        exc: SlackError,
        retry_after: float | None,
    ) -> None:
        """Try again later, in order; messages waiting longer than GIVE_UP_AFTER fail."""
        if not messages:
            return
        now = self._clock()
        if now - min(m.received_at for m in messages) > GIVE_UP_AFTER:
            hours = int(GIVE_UP_AFTER.total_seconds() // 3600)
            await self._refused(conversation, messages, f"{exc.code}, for more than {hours} h")
            return
        self._metrics.retries.labels("slack").inc()
        attempts = max(message.attempts for message in messages) + 1
        at = now + backoff(attempts, retry_after)
        # No answer from Slack (a timeout, a dropped connection, a 5xx): the post may exist.
        in_doubt = isinstance(exc, SlackTemporary) and (exc.status == 0 or exc.status >= 500)
        await self._repo.retry_messages_later(
            [m.id or 0 for m in messages], at, str(exc), in_doubt=in_doubt
        )
        await self._scheduled()

    async def _refused(
        self, conversation: Conversation, messages: Sequence[CustomerMessage], reason: str
    ) -> None:
        """These messages will not be posted: record it, and say so where people look."""
        await self._repo.fail_messages([m.id or 0 for m in messages], reason)
        for message in messages:
            message.state = MessageState.FAILED
        log.error(
            "conversation %s: messages %s not posted: %s",
            conversation.id,
            [m.id for m in messages],
            reason,
        )
        text = blocks.not_posted(conversation, len(messages), reason)
        channel = conversation.channel or self._settings.root_channel(
            conversation.network, conversation.team
        )
        try:
            await self._slack.post(channel, text, thread_ts=conversation.thread_ts)
        except SlackError as exc:
            log.warning("conversation %s: could not say why: %s", conversation.id, exc.code)

    async def _render_root(self, conversation: Conversation) -> None:
        """Show the root's new state; while Slack has chat.update paused, a later pass does."""
        assert conversation.channel and conversation.thread_ts
        try:
            await self._slack.update(
                conversation.channel,
                conversation.thread_ts,
                blocks.root_fallback(conversation),
                self._root_blocks(conversation),
                patient=False,
            )
        except SlackThreadGone:
            log.warning(
                "conversation %s: root is gone; the next message posts a new one", conversation.id
            )
        except SlackTemporary as exc:
            log.info("conversation %s: root not re-rendered yet: %s", conversation.id, exc)
            return
        except SlackPermanent as exc:
            if exc.fixable:
                raise
            log.error("conversation %s: root update refused: %s", conversation.id, exc.code)
        await self._repo.mark_rendered(conversation.id or 0, conversation.version)

    async def _show_inbox_reply(self, echo: TeamReply) -> None:
        """A colleague answered from the network's own inbox: show it, count it."""
        conversation = await self._repo.conversation(echo.conversation_id)
        assert conversation is not None and echo.id is not None
        if conversation.channel is None and conversation.last_customer_at is None:
            # the reply opened the conversation: its root names the customer
            conversation = await self._post_root(conversation, note=None)
        if not (conversation.channel and conversation.thread_ts):
            return  # no thread yet; the next pass shows it after the root
        text = blocks.inbox_reply_text(conversation, echo)
        ts = await self._slack.post(conversation.channel, text, thread_ts=conversation.thread_ts)
        await self._repo.confirm_echo(echo.id, conversation.channel, ts, self._clock())

    # -- replies to the customer ----------------------------------------------
    async def _deliver(self, reply: TeamReply, conversation: Conversation) -> None:
        """Convert the reply for its network and send it, as several messages when it is
        long; a failure midway is retried from the first message not yet sent."""
        assert reply.id is not None
        if reply.attempt_at is not None:
            # A send was started and its outcome never recorded (the process died):
            # it may have reached the customer. Ask a person instead of resending.
            await self._repo.mark_reply_uncertain(reply.id)
            await self._tell_in_doubt(reply)
            return
        network = self._networks.get(conversation.network)
        if network is None:
            await self._fail(reply, f"the {conversation.network} network is not configured here")
            return
        message = slack_message(reply)
        prepared = await prepare_for(network, conversation, message, self._slack.user_name)
        if isinstance(prepared, InternalNote):  # edited into a note before it was sent
            await self._repo.mark_reply_internal(reply.id)
            return
        if isinstance(prepared, OverLimit):
            await self._fail(reply, prepared.sentence)
            return
        files = shared_files(message)
        if not prepared.texts and not files:
            await self._fail(reply, "the reply has no text the customer could read")
            return
        sent: list[str] = json.loads(reply.sent_ids or "[]")
        author_name = await self._slack.user_name(reply.user_id)
        answers = await self._repo.latest_customer_message_id(reply.conversation_id, reply.sent_at)
        messages = outbound_messages(prepared, conversation, reply, author_name, answers)
        if network.sends_file_links and files:
            messages = await self._with_links(messages, files, conversation, reply, author_name)
            files = []
        caption = with_caption(network, conversation.reply_context, messages, files)
        texts = messages if caption is None else []  # or the text goes with the first file
        parts: list[Callable[[], Awaitable[str | None]]] = [
            *(partial(self._send_text, network, outbound) for outbound in texts),
            *(
                partial(self._send_file, network, conversation, reply, f, None if i else caption)
                for i, f in enumerate(files)
            ),
        ]
        for part in parts[len(sent) :]:
            await self._repo.begin_send(reply.id, self._clock())
            try:
                sent_id = await part()
            except DeliveryError as exc:
                if sent:
                    exc.message = f"{exc.message} (after {len(sent)} of {len(parts)} messages)"
                too_old = self._clock() - reply.sent_at > GIVE_UP_AFTER
                if exc.temporary and not too_old:
                    await self._retry_reply(reply, exc)
                else:
                    await self._fail(reply, exc.message)
                return
            sent.append(sent_id or "")
            if len(sent) < len(parts):
                await self._repo.record_reply_parts(reply.id, sent)
        if not any(sent):
            await self._fail(reply, "none of its files could be sent")
            return
        ids = [message_id for message_id in sent if message_id]
        await self._repo.mark_reply_sent(reply.id, sent[0] or None, self._clock(), ids)
        log.info("reply %s delivered in conversation %s", reply.id, conversation.id)
        await self._mark(reply, add="white_check_mark", remove="warning" if reply.warned else None)
        link = network.public_link(conversation.reply_context, sent[0]) if sent[0] else None
        if link and reply.slack_channel and reply.slack_thread_ts:
            await self._slack.post(
                reply.slack_channel,
                f":globe_with_meridians: Public reply: <{link}|see it on "
                f"{blocks.network_label(conversation)}>",
                thread_ts=reply.slack_thread_ts,
            )

    async def _with_links(
        self,
        messages: list[OutboundReply],
        files: list[SharedFile],
        conversation: Conversation,
        reply: TeamReply,
        author_name: str,
    ) -> list[OutboundReply]:
        """Files as signed download links on the reply's last message (or a message of
        their own when the reply has no text)."""
        links = []
        for shared in files:
            link = file_link(self._settings, shared, self._clock())
            if link is None:
                name = blocks.escape(shared.name)
                await self._tell(
                    reply,
                    f":warning: The file {name} was not sent: it goes as a download link, "
                    "which needs PUBLIC_URL (and SLACK_SIGNING_SECRET or API_TOKEN to sign it).",
                )
                continue
            links.append(
                {"name": shared.name, "mimetype": shared.mimetype, "size": shared.size, "url": link}
            )
        if not links:
            return messages
        if not messages:
            messages = outbound_messages(
                PreparedReply(("",), None), conversation, reply, author_name
            )
        return [*messages[:-1], replace(messages[-1], files=tuple(links))]

    async def _send_text(self, network: Network, outbound: OutboundReply) -> str | None:
        return (await network.send(outbound)).message_id

    async def _send_file(
        self,
        network: Network,
        conversation: Conversation,
        reply: TeamReply,
        shared: SharedFile,
        caption: OutboundReply | None = None,
    ) -> str | None:
        """Download one file from Slack (streamed to a spool file) and send it, with the
        reply's text as `caption`. A file the network cannot take or refuses for good is
        `_refused_file`; the rest still goes. Temporary failures retry the reply from
        this part."""
        context = conversation.reply_context
        label = blocks.network_label(conversation)
        try:
            if not shared.url:
                raise NotSupported("Slack does not offer it for download")
            limit = network.file_limit(context, shared.mimetype)
            if limit == 0:
                raise NotSupported(f"{label} takes no files from Slack yet")
            if shared.size > limit:
                over = f"it is {megabytes(shared.size)}, over {label}'s limit of"
                raise NotSupported(f"{over} {megabytes(limit)}")
            with tempfile.NamedTemporaryFile(prefix="relaydesk-file-") as spool:
                try:
                    size = await self._slack.download(shared.url, spool, limit)
                except SlackTemporary as exc:
                    raise DeliveryError(
                        f"Slack did not give the file {shared.name} ({exc.code})", temporary=True
                    ) from None
                except SlackPermanent as exc:
                    raise NotSupported(f"Slack would not give it ({exc.code})") from None
                outgoing = OutgoingFile(shared.name, shared.mimetype, size, spool.name, caption)
                return (await network.send_file(context, outgoing)).message_id
        except DeliveryError as exc:
            if exc.temporary:
                raise
            return await self._refused_file(
                network, conversation, reply, shared, exc.message, caption
            )

    async def _refused_file(
        self,
        network: Network,
        conversation: Conversation,
        reply: TeamReply,
        shared: SharedFile,
        reason: str,
        caption: OutboundReply | None,
    ) -> str | None:
        """A file the network did not take. In a private conversation it goes as a signed
        download link (with PUBLIC_URL; never in public, where anyone would read it), after
        the caption if it had one; the thread says which file and why."""
        name = blocks.escape(shared.name)
        link = None
        if not blocks.is_public(conversation):
            link = file_link(self._settings, shared, self._clock())
        if link is None:
            await self._tell(reply, f":warning: The file {name} was not sent: {reason}.")
            if caption is None:
                return None
            return await self._send_text(network, replace(caption, caption=False))
        await self._tell(
            reply, f":link: The file {name} went as a download link (valid 24 hours): {reason}."
        )
        line = f"{shared.name}: {link}"
        if caption is not None:
            text = f"{caption.text}\n\n{line}"  # after the text: its entities stay in place
            return await self._send_text(network, replace(caption, caption=False, text=text))
        author_name = await self._slack.user_name(reply.user_id)
        (message,) = outbound_messages(
            PreparedReply((line,), None), conversation, reply, author_name
        )
        return await self._send_text(network, message)

    async def _retry_reply(self, reply: TeamReply, exc: DeliveryError) -> None:
        assert reply.id is not None
        self._metrics.retries.labels("network").inc()
        at = self._clock() + backoff(reply.attempts + 1, exc.retry_after)
        await self._repo.retry_reply_later(reply.id, at, exc.message, warned=reply.warned)
        await self._scheduled()
        if not reply.warned:
            await self._tell(
                reply, f":warning: Not delivered yet: {exc.message}. Retrying automatically."
            )
            await self._repo.set_warned(reply.id)

    async def _fail(self, reply: TeamReply, reason: str) -> None:
        assert reply.id is not None
        await self._repo.mark_reply_failed(reply.id, reason)
        log.warning("reply %s not delivered: %s", reply.id, reason)
        await self._tell(reply, f":warning: Not delivered to the customer: {reason}")
        await self._repo.set_warned(reply.id)  # only now: a lost explanation is retried

    async def _tell_in_doubt(self, reply: TeamReply) -> None:
        """Mark a reply whose send was cut short, with a Resend button."""
        assert reply.id is not None
        log.warning("reply %s: delivery in doubt after an interrupted send", reply.id)
        await self._mark(reply, add="grey_question")
        if reply.slack_channel and reply.slack_thread_ts:
            await self._slack.post(
                reply.slack_channel,
                blocks.IN_DOUBT,
                blocks=blocks.in_doubt_blocks(reply.id),
                thread_ts=reply.slack_thread_ts,
            )
        await self._repo.set_warned(reply.id)

    async def _tell(self, reply: TeamReply, text: str) -> None:
        """Say why in the thread the reply was written in."""
        await self._mark(reply, add="warning")
        if reply.slack_channel and reply.slack_thread_ts:
            await self._slack.post(reply.slack_channel, text, thread_ts=reply.slack_thread_ts)

    async def _mark(self, reply: TeamReply, add: str, remove: str | None = None) -> None:
        """Reactions are a courtesy: the delivery state is already in SQL. The undo
        window's hourglass goes with the first outcome."""
        if not (reply.slack_channel and reply.slack_ts):
            return
        removed = [name for name in (remove,) if name]
        if self._settings.undo_seconds and not reply.warned:
            removed.append(UNDO_REACTION)
        try:
            for name in removed:
                await self._slack.unreact(reply.slack_channel, reply.slack_ts, name)
            await self._slack.react(reply.slack_channel, reply.slack_ts, add)
        except SlackError as exc:
            log.warning("reaction %s on reply %s failed: %s", add, reply.id, exc.code)

    # -- customer files into the thread ------------------------------------------------
    async def _record_media(self, messages: Sequence[CustomerMessage]) -> None:
        """Files of messages about to be marked posted: recorded first, so none is lost."""
        await self._media.add(
            [
                NewMedia(message.id or 0, position, message.conversation_id, raw)
                for message in messages
                for position, raw in enumerate(message.attachments or [])
                if is_media(_attachment(raw))
            ]
        )

    async def _relay_media(self, conversation_id: int) -> None:
        """Upload the conversation's due files in message order, each on its own: one
        that fails waits for its retry without holding back the others."""
        due = await self._media.due(conversation_id, self._clock())
        if not due:
            return
        conversation = await self._repo.conversation(conversation_id)
        if conversation is None or not (conversation.channel and conversation.thread_ts):
            return
        for media in due:
            await self._relay_file(conversation, media)

    async def _relay_file(self, conversation: Conversation, media: CustomerMedia) -> None:
        assert media.id is not None and conversation.channel and conversation.thread_ts
        attachment = _attachment(media.attachment)
        network = self._networks.get(conversation.network)
        if network is None:
            await self._media_failed(conversation, media, attachment, "its network is off here")
            return
        if media.slack_file_id and await self._slack.file_in_thread(
            conversation.channel, conversation.thread_ts, media.slack_file_id
        ):
            await self._media.posted(media.id)  # shared before; its answer was lost
            return
        try:
            stream = await network.open_media(attachment)
            try:
                await self._upload(conversation, media, stream, attachment)
            finally:
                await stream.close()
        except MediaUnavailable as exc:
            if exc.temporary and media.attempts + 1 < MEDIA_TRIES:
                await self._media_later(media, exc.reason, None)
            else:
                await self._media_failed(conversation, media, attachment, exc.reason, exc.link)
            return
        except SlackTemporary as exc:
            if media.attempts + 1 < MEDIA_TRIES:
                await self._media_later(media, str(exc), exc.retry_after)
            else:
                await self._media_failed(conversation, media, attachment, f"Slack: {exc.code}")
            return
        except SlackPermanent as exc:
            if exc.fixable:
                await self._media_later(media, str(exc), None)
            else:
                reason = f"Slack refused the upload ({exc.code})"
                await self._media_failed(conversation, media, attachment, reason, attachment.url)
            return
        await self._media.posted(media.id)
        log.info("conversation %s: file %s uploaded", conversation.id, media.id)

    async def _upload(
        self,
        conversation: Conversation,
        media: CustomerMedia,
        stream: MediaStream,
        attachment: Attachment,
    ) -> None:
        """Stream the download into Slack; with no announced size, spool it to disk first."""
        assert media.id is not None and conversation.channel and conversation.thread_ts
        media_id = media.id
        too_large = MediaUnavailable(
            f"it is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            temporary=False,
            link=attachment.url if attachment.url and "/bot" not in attachment.url else None,
        )
        if stream.size is not None and stream.size > MAX_FILE_BYTES:
            raise too_large
        broken: list[MediaUnavailable] = []  # a download that broke off mid-upload

        async def watched(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            try:
                async for chunk in chunks:
                    yield chunk
            except MediaUnavailable as exc:
                broken.append(exc)
                raise

        async def before_share(file_id: str) -> None:
            await self._media.begin_share(media_id, file_id)

        with tempfile.TemporaryFile() as spool:
            chunks, length = stream.chunks, stream.size
            if length is None:
                length = await _spool(stream.chunks, spool, MAX_FILE_BYTES, too_large)
                chunks = _unspool(spool)
            title = attachment.title if attachment.title and "/" not in attachment.title else None
            try:
                await self._slack.upload_file(
                    conversation.channel,
                    conversation.thread_ts,
                    stream.filename,
                    watched(chunks),
                    length,
                    title or stream.filename,
                    before_share=before_share,
                )
            except SlackError:
                if broken:
                    raise broken[0] from None
                raise

    async def _media_later(
        self, media: CustomerMedia, error: str, retry_after: float | None
    ) -> None:
        self._metrics.retries.labels("media").inc()
        at = self._clock() + backoff(media.attempts + 1, retry_after)
        await self._media.retry_later(media, at, error)
        await self._scheduled()

    async def _media_failed(
        self,
        conversation: Conversation,
        media: CustomerMedia,
        attachment: Attachment,
        reason: str,
        link: str | None = None,
    ) -> None:
        """Never silence: the thread says which file could not be shown, why, and where
        it is when a link exists."""
        assert media.id is not None and conversation.channel
        log.warning("conversation %s: file %s not uploaded: %s", conversation.id, media.id, reason)
        text = (
            f":paperclip: The customer's {attachment.kind} could not be shown here: "
            f"{blocks.escape(reason)}."
        )
        if link:
            text += f" <{link}|Open it>"
        await self._slack.post(conversation.channel, text, thread_ts=conversation.thread_ts)
        await self._media.failed(media.id, reason)


def _attachment(raw: Mapping[str, object]) -> Attachment:
    """A stored attachment dict back as the type (keys it does not know are ignored)."""
    known = {f.name for f in fields(Attachment)}
    values = {k: v for k, v in raw.items() if k in known}
    return Attachment(**values)  # type: ignore[arg-type]


async def _spool(
    chunks: AsyncIterator[bytes], spool: Any, limit: int, too_large: MediaUnavailable
) -> int:
    """Write a download of unknown size to a temporary file; its length."""
    length = 0
    async for chunk in chunks:
        length += len(chunk)
        if length > limit:
            raise too_large
        await asyncio.to_thread(spool.write, chunk)
    spool.seek(0)
    return length


async def _unspool(spool: Any) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(spool.read, SPOOL_CHUNK):
        yield chunk


def _slack_ts(at: datetime) -> str:
    return f"{at.timestamp():.6f}"
