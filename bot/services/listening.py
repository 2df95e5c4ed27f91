"""Listening: public mentions of the brand, stored once, shown once in Slack.

Mentions arrive from webhooks (through the relay, before the 200) and from the X
recent search (`bot.services.x_search`). Those whose words name a `LISTEN_TERMS` term
(or that tag the account) are stored, UNIQUE on a source key that names the post the
same way whichever source reported it. One poster at a time, across processes (a
lease, fenced by a PostgreSQL advisory lock), shows them in `SLACK_LISTENING_CHANNEL`:
one message each, or, past `BUSY_PER_HOUR` mentions in the last hour, one digest per
`DIGEST_EVERY` window. Every post goes through the Slack wrapper's per-channel pacing
and carries metadata naming what it shows, so a post whose answer was lost is looked for
before it is made again; the Slack ts is stored only after Slack took the post.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from bot.blocks.listening import (
    DIGEST_CHUNK,
    METADATA_EVENT,
    TAGGED,
    can_open,
    digest_blocks,
    digest_text,
    mention_blocks,
    mention_text,
)
from bot.config import Settings
from bot.networks.base import InboundMessage, PublicMention
from bot.services.listen_terms import find
from bot.services.refusal import Refusal
from bot.slack import Slack, SlackError, SlackPermanent, SlackThreadGone
from storage.coordination import CoordinationUnavailable, Coordinator, Lease
from storage.db import DatabaseUnavailable
from storage.listening import Mentions, NewMention
from storage.models import ListenDigest, ListenMention, MentionState
from storage.repo import Stored

log = logging.getLogger(__name__)

WAKE_TOPIC = "listening"
BUSY_PER_HOUR = 60  # more mentions than this in the last hour: digests instead
DIGEST_EVERY = timedelta(minutes=10)
ROUND_POSTS = 10  # posts per round, so the lease is renewed between rounds
LEASE_SECONDS = 30.0
IDLE_SECONDS = 1.0  # a round at least this often: a digest window may have closed
LOOK_SINCE = timedelta(minutes=5)  # a post in doubt is looked for from this before its try
FENCE_KEY = -19  # the poster's PostgreSQL advisory lock (conversation ids are positive)
MAX_ID = 255
X_STATUS = re.compile(
    r"^https?://(?:www\.|mobile\.)?(?:x|twitter)\.com/[^/?#]+(?:/web)?/status(?:es)?/(\d+)", re.I
)
FACEBOOK_ID = re.compile(
    r"^https?://(?:www\.|m\.)?facebook\.com/(\d+(?:_\d+)?)/?(?:[?#].*)?$", re.I
)

NOT_A_MENTION = "This button does not belong to a Relaydesk mention."

Receive = Callable[[list[InboundMessage]], Awaitable[list[Stored]]]


def source_key(mention: PublicMention) -> str:
    """One name per post, whichever source reported it: an X post by its id (from the
    search or a generic mention's x.com link), a Facebook object by its id, anything
    else by its normalized address."""
    if mention.source == "x":
        return f"x:{mention.external_id}"
    if mention.source == "facebook":
        return f"fb:{mention.external_id}"
    if mention.source == "instagram":
        return f"ig:{mention.external_id}"
    if mention.url:
        if hit := X_STATUS.match(mention.url):
            return f"x:{hit.group(1)}"
        if hit := FACEBOOK_ID.match(mention.url):
            return f"fb:{hit.group(1)}"
        return _url_key(mention.url)
    return f"{mention.source}:{mention.external_id}"


def _url_key(url: str) -> str:
    """`url:` + the address without scheme, `www.`, fragment or trailing slash (host
    lowercased); hashed when too long for the column."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    key = "url:" + urlunsplit(("", host, parts.path.rstrip("/"), parts.query, "")).lstrip("/")
    if len(key) > 300:
        key = "url#" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _cut(value: str, limit: int = MAX_ID) -> str:
    return value.replace("\x00", "")[:limit]


class Listening:
    def __init__(
        self,
        settings: Settings,
        mentions: Mentions,
        slack: Slack,
        coordinator: Coordinator,
        receive: Receive,
        networks: Collection[str],
        clock: Callable[[], datetime],
        check_allowed: Callable[[str], None],
    ) -> None:
        """`receive` stores a customer message (the relay): how an opened mention
        becomes a conversation; `networks` are those configured (a mention whose
        network is not cannot be opened); `check_allowed` refuses people outside
        ALLOWED_USERS (the conversations' rule)."""
        self._settings = settings
        self._mentions = mentions
        self._slack = slack
        self._coordinator = coordinator
        self._receive = receive
        self._networks = frozenset(networks)
        self._clock = clock
        self._check_allowed = check_allowed
        self.idle = IDLE_SECONDS

    @property
    def enabled(self) -> bool:
        return self._settings.listening

    # -- in -----------------------------------------------------------------------
    async def receive(self, found: list[PublicMention]) -> int:
        """Store the mentions that name a term (or tag the account); how many were new."""
        if not self.enabled:
            log.info("%d public mention(s) ignored: listening is off", len(found))
            return 0
        rows = [row for mention in found if (row := self._row(mention)) is not None]
        if not rows:
            return 0
        new = await self._mentions.store(rows, self._clock())
        if new:
            await self._wake()
        return new

    def _row(self, mention: PublicMention) -> NewMention | None:
        match = find(self._settings.terms, mention.text)
        if match is None and not mention.tagged:
            return None
        opening = {}
        if mention.network and mention.conversation_key:
            opening = {
                "network": mention.network,
                "conversation_key": mention.conversation_key,
                "reply_context": dict(mention.reply_context),
            }
        return NewMention(
            source_key=source_key(mention),
            source=mention.source,
            external_id=_cut(mention.external_id),
            url=mention.url[:2000] if mention.url else None,
            author_id=_cut(mention.author_id),
            author_name=_cut(mention.author_name),
            author_handle=_cut(mention.author_handle) if mention.author_handle else None,
            text=mention.text.replace("\x00", ""),
            term=_cut(match.term) if match else TAGGED,
            variant=_cut(match.variant) if match else TAGGED,
            found=_cut(match.found) if match else "",
            edits=match.edits if match else 0,
            sent_at=mention.sent_at,
            opening=opening,
        )

    async def _wake(self) -> None:
        try:
            await self._coordinator.publish(WAKE_TOPIC)
        except CoordinationUnavailable as exc:
            log.warning("listening wake-up not sent; the poster's next round finds it: %s", exc)

    # -- buttons ------------------------------------------------------------------
    async def open(self, mention_id: int, user: str, channel: str, ts: str) -> str:
        """Make the mention a conversation the team answers publicly, once."""
        self._check_allowed(user)
        mention = await self._clicked(mention_id, channel, ts)
        opening = mention.opening or {}
        if not can_open(mention, self._networks):
            raise Refusal(
                "This mention cannot be answered from Slack; answer it where it was posted."
            )
        stored = await self._receive(
            [
                InboundMessage(
                    network=str(opening["network"]),
                    conversation_key=str(opening["conversation_key"]),
                    message_id=mention.external_id,
                    author_id=mention.author_id or mention.source_key,
                    author_name=mention.author_name,
                    author_handle=mention.author_handle,
                    text=mention.text,
                    sent_at=mention.sent_at,
                    reply_context=dict(opening.get("reply_context") or {}),
                )
            ]
        )
        conversation_id = stored[0].conversation_id
        if not await self._mentions.act(
            mention_id, MentionState.OPENED, user, self._clock(), conversation_id
        ):
            raise Refusal(await self._already(mention_id))
        await self._rerender(channel, ts)
        return (
            f"Opened as conversation #{conversation_id}: it is in the inbox, and a reply in "
            "its thread is posted publicly."
        )

    async def dismiss(self, mention_id: int, user: str, channel: str, ts: str) -> str:
        self._check_allowed(user)
        await self._clicked(mention_id, channel, ts)
        if not await self._mentions.act(mention_id, MentionState.DISMISSED, user, self._clock()):
            raise Refusal(await self._already(mention_id))
        await self._rerender(channel, ts)
        return "Dismissed."

    async def _clicked(self, mention_id: int, channel: str, ts: str) -> ListenMention:
        """The mention a button names, if it is on the message that shows it."""
        mention = await self._mentions.get(mention_id)
        if mention is None or (mention.slack_channel, mention.slack_ts) != (channel, ts):
            raise Refusal(NOT_A_MENTION)
        return mention

    async def _already(self, mention_id: int) -> str:
        mention = await self._mentions.get(mention_id)
        if mention is None or mention.acted_by is None:
            return "This mention cannot be changed now."
        return f"<@{mention.acted_by}> already {mention.state} this mention."

    async def _rerender(self, channel: str, ts: str) -> None:
        shown = await self._mentions.shown_with(channel, ts)
        if not shown:
            return
        first = shown[0]
        if first.digest_id is None:
            text, blocks = mention_text(first), mention_blocks(first, self._networks)
        else:
            digest = await self._mentions.digest(first.digest_id)
            assert digest is not None
            text, blocks = await self._chunk_message(digest, first.chunk or 0, shown)
        try:
            await self._slack.update(channel, ts, text, blocks)
        except SlackError as exc:
            log.warning("listening: could not update %s/%s: %s", channel, ts, exc.code)

    # -- out: the poster ------------------------------------------------------------
    async def run(self) -> None:
        """Background task of every process: one of them posts at a time."""
        waiter = self._coordinator.waiter(WAKE_TOPIC)
        try:
            while True:
                try:
                    await self._round()
                except (DatabaseUnavailable, CoordinationUnavailable) as exc:
                    log.warning("listening: storage unavailable, will retry: %s", exc)
                except SlackError as exc:
                    log.warning("listening: Slack %s; will retry", exc)
                except Exception:
                    # A supervisor boundary: the mentions stay pending in SQL.
                    log.exception("listening: unexpected error; will retry")
                await waiter.wait(self.idle)
        finally:
            await waiter.close()

    async def _round(self) -> None:
        lease = await self._coordinator.lock("listening:poster", LEASE_SECONDS)
        if lease is None:
            return
        keepalive = asyncio.create_task(self._keep(lease))
        try:
            async with self._mentions.db.fence(FENCE_KEY) as ours:
                if ours:
                    while await self.post_due():
                        pass
        finally:
            keepalive.cancel()
            await self._coordinator.release(lease)

    async def _keep(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._coordinator.extend(lease, LEASE_SECONDS):
                    log.warning("listening: lost the poster lease; the SQL fence still guards")
                    return
            except CoordinationUnavailable as exc:
                log.warning("listening: cannot renew the poster lease: %s", exc)

    async def post_due(self) -> bool:
        """Post up to ROUND_POSTS messages that are due; True if more may be due."""
        if not self.enabled:
            return False
        posted = 0
        now = self._clock()
        for digest in await self._mentions.unfinished_digests():
            for chunk in range(digest.posted_chunks, digest.chunks):
                if posted >= ROUND_POSTS:
                    return True
                if not await self._post_chunk(digest, chunk):
                    return False
                posted += 1
        busy = await self._mentions.count_since(now - timedelta(hours=1)) > BUSY_PER_HOUR
        if busy:
            window = _window_start(now)
            digest_id = await self._mentions.open_digest(
                window, self._channel, DIGEST_CHUNK, self._clock()
            )
            return digest_id is not None
        for mention in await self._mentions.waiting(ROUND_POSTS - posted):
            if not await self._post_one(mention):
                return False
            posted += 1
        return posted >= ROUND_POSTS

    @property
    def _channel(self) -> str:
        channel = self._settings.slack_listening_channel
        assert channel is not None
        return channel

    async def _post_one(self, mention: ListenMention) -> bool:
        """Post one mention; False when Slack refused and the round should stop."""
        assert mention.id is not None
        channel = self._channel
        payload = {"mention": mention.id}
        if mention.attempt_at is not None:
            found = await self._find(channel, payload, mention.attempt_at, None)
            if found:
                await self._mentions.mark_posted(mention.id, channel, found)
                return True
        await self._mentions.begin_post(mention.id, self._clock())
        try:
            ts = await self._slack.post(
                channel,
                mention_text(mention),
                blocks=mention_blocks(mention, self._networks),
                metadata={"event_type": METADATA_EVENT, "event_payload": payload},
            )
        except SlackPermanent as exc:
            return await self._refused(exc, mention.id)
        await self._mentions.mark_posted(mention.id, channel, ts)
        return True

    async def _post_chunk(self, digest: ListenDigest, chunk: int) -> bool:
        assert digest.id is not None
        thread = digest.root_ts if chunk > 0 else None
        payload = {"digest": digest.id, "chunk": chunk}
        if digest.attempt_at is not None:
            found = await self._find(digest.channel, payload, digest.attempt_at, thread)
            if found:
                await self._mentions.mark_chunk_posted(digest.id, chunk, digest.channel, found)
                digest.posted_chunks, digest.attempt_at = chunk + 1, None
                digest.root_ts = digest.root_ts or found
                return True
        shown = await self._mentions.chunk(digest.id, chunk)
        text, blocks = await self._chunk_message(digest, chunk, shown)
        await self._mentions.begin_chunk(digest.id, self._clock())
        try:
            ts = await self._slack.post(
                digest.channel,
                text,
                blocks=blocks,
                thread_ts=thread,
                metadata={"event_type": METADATA_EVENT, "event_payload": payload},
            )
        except SlackPermanent as exc:
            log.error("listening: Slack refused digest %s part %s: %s", digest.id, chunk, exc.code)
            if not exc.fixable:  # refused for good: its mentions fail, the digest goes on
                await self._mentions.skip_chunk(digest.id, chunk)
                digest.posted_chunks, digest.attempt_at = chunk + 1, None
                return True
            return False
        await self._mentions.mark_chunk_posted(digest.id, chunk, digest.channel, ts)
        digest.posted_chunks, digest.attempt_at = chunk + 1, None
        digest.root_ts = digest.root_ts or ts
        return True

    async def _chunk_message(
        self, digest: ListenDigest, chunk: int, shown: list[ListenMention]
    ) -> tuple[str, list[dict[str, object]]]:
        assert digest.id is not None
        summary = await self._mentions.digest_summary(digest.id) if chunk == 0 else []
        blocks = digest_blocks(
            digest.window_start, digest.count, summary, shown, chunk, digest.chunks, self._networks
        )
        return digest_text(digest.count, chunk, digest.chunks), blocks

    async def _find(
        self, channel: str, payload: dict[str, int], since: datetime, thread: str | None
    ) -> str | None:
        """The ts of our post carrying `payload`, made since a try whose answer was lost."""
        oldest = f"{(since - LOOK_SINCE).timestamp():.6f}"
        try:
            found = await self._slack.find_posts(
                channel, METADATA_EVENT, payload, oldest=oldest, thread_ts=thread
            )
        except SlackThreadGone:
            return None
        return str(found[0]["ts"]) if found else None

    async def _refused(self, exc: SlackPermanent, mention_id: int) -> bool:
        """Slack refused the post: an admin can fix it (retry later), or it is refused for
        good (the mention is marked failed, never retried in a loop)."""
        log.error("listening: Slack refused mention %s: %s", mention_id, exc.code)
        if not exc.fixable:
            await self._mentions.fail(mention_id)
        return False


def _window_start(now: datetime) -> datetime:
    """The start of the DIGEST_EVERY window `now` is in (windows counted from the epoch)."""
    step = int(DIGEST_EVERY.total_seconds())
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, tz=now.tzinfo)
