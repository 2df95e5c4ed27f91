"""Meta adapter: Messenger, Instagram DMs, Facebook Page comments, Instagram comments.

One webhook (`/webhooks/meta`) receives `object: page` and `object: instagram` bodies,
signed with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret).

Conversation keys (stable, unique within the `meta` network):
- Messenger DM: `page:<page_id>:<psid>`; Instagram DM: `ig:<ig_account_id>:<igsid>`.
- Page comment: `comment:<top_level_comment_id>`. A reply to a comment carries the
  top-level comment as `parent_id` (a top-level comment's `parent_id` is the post id),
  so it lands in its parent's thread. Instagram comments: `igcomment:<top_level_id>`
  (`parent_id` is only present on replies).

Echoes (`message.is_echo`, Messenger and Instagram) are messages the Page itself sent:
from Meta's own inbox by a colleague, or by this app through the Send API. The adapter
cannot tell the two apart, so it returns every echo as `InboundMessage(from_team=True)`
in the customer's conversation; the relay drops those whose `message_id` it already
stored as the id of its own reply (the Send API returns it). Comments written by the
Page / the Instagram account itself are treated the same way.

Every item of every entry is handled; an item that cannot be read is skipped and
reported (`parse_report`), and `parse` logs it at WARNING with its ids only.

Customer DMs carry `window_closes_at` (24 hours after the message) and
`human_agent_window_closes_at` (7 days, the HUMAN_AGENT tag limit) in `reply_context`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from bot.config import ConfigError, Settings
from bot.networks.base import (
    Attachment,
    DeliveryError,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    MediaStream,
    MediaUnavailable,
    OutboundReply,
    PayloadError,
    SentReceipt,
    check_hex_signature,
)
from bot.networks.graph import (
    MESSAGING_WINDOW,
    GraphError,
    graph_delivery_error,
    hub_handshake,
    signature_header,
)
from bot.networks.http import JsonHttp, JSONObject
from bot.networks.media import download
from bot.networks.payload import (
    ParseResult,
    SkippedItem,
    as_object,
    context_id,
    epoch,
    get_id,
    get_list,
    get_object,
    item_ids,
    load_object,
    opt_id,
    opt_list,
    opt_object,
    opt_str,
    summary,
)

HUMAN_AGENT_WINDOW = timedelta(days=7)


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """`entry.time`: milliseconds for messaging entries, seconds for `changes` entries."""
    value = entry.get("time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch(value, milliseconds=value > 100_000_000_000, what="entry.time")
    raise PayloadError("entry.time is missing")


# -- the Meta adapter -------------------------------------------------------------------
# Send API / Graph error codes, from Meta's Messenger Platform error reference
# (https://developers.facebook.com/docs/messenger-platform/error-codes and
# https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes):
#   2 "An unexpected error has occurred. Please retry your request later.",
#   4 "Application request limit reached", 17 user request limit, 32 Page request limit,
#   613 "Calls to this API have exceeded the rate limit",
#   1200 "Temporary send message failure. Please try again later."
#   10 / 2018278 "This message is sent outside of allowed window" (Messenger),
#   10 / 2534022 the same for Instagram messaging.
META_TEMPORARY_CODES = frozenset({2, 4, 17, 32, 613, 1200})
META_WINDOW_SUBCODES = frozenset({2018278, 2534022})
META_WINDOW_MESSAGE = (
    "Not delivered: the customer's last message is more than 24 hours old, so Meta's "
    "standard messaging window is closed. If your Page has the human agent permission, "
    "a person can still answer within 7 days of the customer's last message with the "
    "HUMAN_AGENT tag (for example from the Meta Business Suite inbox); otherwise wait "
    "for the customer to write again."
)


class MetaNetwork:
    """Messenger, Instagram DMs, Page comments and Instagram comments (network `meta`)."""

    name = "meta"

    def __init__(
        self,
        *,
        app_secret: str,
        verify_token: str,
        page_token: str,
        graph_url: str = "https://graph.facebook.com/v25.0",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._app_secret = app_secret
        self._verify_token = verify_token
        self._page_token = page_token
        self._graph_url = graph_url.rstrip("/")
        self._http = JsonHttp("Meta", session)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession | None = None
    ) -> MetaNetwork:
        if not (
            settings.meta_app_secret and settings.meta_verify_token and settings.meta_page_token
        ):
            raise ConfigError(
                "META_APP_SECRET, META_VERIFY_TOKEN and META_PAGE_TOKEN are all needed "
                "for Messenger, Instagram and Page comments"
            )
        return cls(
            app_secret=settings.meta_app_secret,
            verify_token=settings.meta_verify_token,
            page_token=settings.meta_page_token,
            graph_url=settings.meta_graph_url,
            session=session,
        )

    # -- inbound --------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        check_hex_signature(self._app_secret, body, signature_header(headers))

    def handshake(self, query: Mapping[str, str]) -> HandshakeAnswer:
        return hub_handshake(query, self._verify_token)

    def parse(self, body: bytes) -> list[InboundEvent]:
        return self.parse_report(body).logged(self.name)

    def parse_report(self, body: bytes) -> ParseResult:
        """Events plus the items that were skipped; raises only for an unusable body."""
        data = load_object(body)
        kind = data.get("object")
        if kind not in ("page", "instagram"):
            raise PayloadError("object is not 'page' or 'instagram'")
        entries = get_list(data, "entry")
        result = ParseResult()
        for index, raw_entry in enumerate(entries):
            where = f"entry[{index}]"
            if not isinstance(raw_entry, dict):
                result.skipped.append(SkippedItem(where, "no ids", "entry is not an object"))
                continue
            self._entry(kind, raw_entry, where, result)
        return result

    def _entry(self, kind: str, entry: JSONObject, where: str, result: ParseResult) -> None:
        for list_name in ("messaging", "standby", "changes"):
            try:
                items = opt_list(entry, list_name)
            except PayloadError as exc:
                result.skipped.append(SkippedItem(where, item_ids(entry, ("id",)), exc.message))
                continue
            for index, item in enumerate(items):
                item_where = f"{where}.{list_name}[{index}]"
                try:
                    event = (
                        self._change(kind, entry, as_object(item, "change"))
                        if list_name == "changes"
                        else self._messaging(kind, as_object(item, "messaging item"))
                    )
                except PayloadError as exc:
                    ids = item_ids(
                        item,
                        ("message", "mid"),
                        ("sender", "id"),
                        ("recipient", "id"),
                        ("value", "comment_id"),
                        ("value", "id"),
                        ("value", "post_id"),
                    )
                    result.skipped.append(SkippedItem(item_where, ids, exc.message))
                    continue
                if event is not None:
                    result.events.append(event)

    def _messaging(self, kind: str, item: JSONObject) -> InboundMessage | None:
        """A Messenger / Instagram `messaging[]` item; None for receipts, reactions, etc."""
        message = opt_object(item, "message")
        if message is None or message.get("is_deleted") is True:
            return None
        sender = get_id(get_object(item, "sender"), "id")
        recipient = get_id(get_object(item, "recipient"), "id")
        sent_at = epoch(item.get("timestamp"), milliseconds=True, what="timestamp")
        mid = get_id(message, "mid")
        echo = message.get("is_echo") is True
        account, customer = (sender, recipient) if echo else (recipient, sender)
        channel = "instagram" if kind == "instagram" else "messenger"
        prefix = "ig" if kind == "instagram" else "page"
        attachments = _messaging_attachments(message)
        context: dict[str, Any] = {
            "channel": channel,
            "page_id": account,
            "recipient_id": customer,
        }
        if echo:
            app_id = opt_id(message, "app_id")
            if app_id is not None:
                context["app_id"] = app_id
        else:
            context["window_closes_at"] = (sent_at + MESSAGING_WINDOW).isoformat()
            context["human_agent_window_closes_at"] = (sent_at + HUMAN_AGENT_WINDOW).isoformat()
        return InboundMessage(
            network=self.name,
            conversation_key=f"{prefix}:{account}:{customer}",
            message_id=mid,
            author_id=sender,
            author_name=(
                ("Instagram account" if kind == "instagram" else "Facebook Page")
                if echo
                else sender
            ),
            text=summary(opt_str(message, "text") or "", attachments),
            sent_at=sent_at,
            attachments=tuple(attachments),
            reply_context=context,
            from_team=echo,
        )

    def _change(self, kind: str, entry: JSONObject, change: JSONObject) -> InboundMessage | None:
        """A `changes[]` item: Page `feed` comments and Instagram `comments`."""
        field_name = change.get("field")
        value = get_object(change, "value")
        if kind == "page" and field_name == "feed":
            return self._page_comment(entry, value)
        if kind == "instagram" and field_name == "comments":
            return self._instagram_comment(entry, value)
        return None

    def _page_comment(self, entry: JSONObject, value: JSONObject) -> InboundMessage | None:
        # Shape: https://developers.facebook.com/docs/graph-api/webhooks/reference/page (feed);
        # captured examples in restfb/restfb src/test/resources/json/webhooks/feed-comment-*.
        if value.get("item") != "comment" or value.get("verb") != "add":
            return None  # posts, likes, reactions, edits and removals are not messages
        page_id = get_id(entry, "id")
        comment_id = get_id(value, "comment_id")
        post_id = get_id(value, "post_id")
        parent_id = opt_id(value, "parent_id")
        thread = comment_id if parent_id in (None, post_id) else parent_id
        author = opt_object(value, "from")
        if author is not None:
            author_id, author_name = get_id(author, "id"), opt_str(author, "name")
        else:  # older payloads: sender_id / sender_name
            author_id, author_name = get_id(value, "sender_id"), opt_str(value, "sender_name")
        created = value.get("created_time")
        sent_at = (
            entry_time(entry)
            if created is None
            else epoch(created, milliseconds=False, what="created_time")
        )
        attachments = []
        for key, kind_name in (("photo", "image"), ("video", "video")):
            url = opt_str(value, key)
            if url:
                attachments.append(Attachment(kind_name, url=url))
        return InboundMessage(
            network=self.name,
            conversation_key=f"comment:{thread}",
            message_id=comment_id,
            author_id=author_id,
            author_name=author_name or author_id,
            text=summary(opt_str(value, "message") or "", attachments),
            sent_at=sent_at,
            attachments=tuple(attachments),
            reply_context={
                "channel": "facebook_comment",
                "page_id": page_id,
                "post_id": post_id,
                "comment_id": thread,
            },
            from_team=author_id == page_id,
        )

    def _instagram_comment(self, entry: JSONObject, value: JSONObject) -> InboundMessage:
        # Shape: https://developers.facebook.com/docs/instagram-platform/webhooks/examples
        # (comments) and the `parent_id` / `from` fields of the Oct 20 2021 changelog.
        account_id = get_id(entry, "id")
        comment_id = get_id(value, "id")
        thread = opt_id(value, "parent_id") or comment_id
        author = get_object(value, "from")
        author_id = get_id(author, "id")
        username = opt_str(author, "username")
        media = opt_object(value, "media")
        context: dict[str, Any] = {
            "channel": "instagram_comment",
            "ig_account_id": account_id,
            "comment_id": thread,
        }
        if media is not None and (media_id := opt_id(media, "id")) is not None:
            context["media_id"] = media_id
        return InboundMessage(
            network=self.name,
            conversation_key=f"igcomment:{thread}",
            message_id=comment_id,
            author_id=author_id,
            author_name=username or author_id,
            author_handle=username,
            text=summary(opt_str(value, "text") or "", []),
            sent_at=entry_time(entry),
            reply_context=context,
            from_team=author_id == account_id,
        )

    # -- outbound -------------------------------------------------------------------
    async def send(self, reply: OutboundReply) -> SentReceipt:
        context = reply.reply_context
        channel = context.get("channel")
        if channel in ("messenger", "instagram"):
            # https://developers.facebook.com/docs/messenger-platform/reference/send-api/
            url = f"{self._graph_url}/me/messages"
            payload: JSONObject = {
                "recipient": {"id": context_id(context, "recipient_id")},
                "messaging_type": "RESPONSE",
                "message": {"text": reply.text},
            }
            id_key = "message_id"
        elif channel == "facebook_comment":
            # POST /{comment-id}/comments with `message` replies in the comment's thread.
            url = f"{self._graph_url}/{context_id(context, 'comment_id')}/comments"
            payload, id_key = {"message": reply.text}, "id"
        elif channel == "instagram_comment":
            # POST /{ig-comment-id}/replies (Instagram comment moderation guide).
            url = f"{self._graph_url}/{context_id(context, 'comment_id')}/replies"
            payload, id_key = {"message": reply.text}, "id"
        else:
            raise DeliveryError(
                f"cannot reply: unknown Meta channel {channel!r} in the conversation",
                temporary=False,
            )
        answer = await self._http.post(
            url, payload, {"Authorization": f"Bearer {self._page_token}"}
        )
        if 200 <= answer.status < 300:
            sent_id = answer.data.get(id_key) if answer.data else None
            return SentReceipt(str(sent_id) if isinstance(sent_id, str | int) else None)
        error = GraphError.read(answer)
        raise graph_delivery_error(
            answer,
            platform="Meta",
            temporary_codes=META_TEMPORARY_CODES,
            window_closed=error.code == 10 and error.subcode in META_WINDOW_SUBCODES,
            window_message=META_WINDOW_MESSAGE,
        )

    async def close(self) -> None:
        await self._http.close()

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """Messenger and Instagram give each attachment a signed CDN URL (`payload.url`)."""
        if not attachment.url:
            raise MediaUnavailable("Meta gave no URL for it", temporary=False)
        return await download("Meta", attachment.url, attachment, link=attachment.url)


def _messaging_attachments(message: JSONObject) -> list[Attachment]:
    """Messenger / Instagram `message.attachments[]` (and stickers, unsupported content)."""
    if message.get("is_unsupported") is True:
        return [Attachment("unsupported", title="unsupported message type")]
    attachments = []
    for raw in opt_list(message, "attachments"):
        item = as_object(raw, "attachment")
        kind = opt_str(item, "type") or "unknown"
        payload = opt_object(item, "payload") or {}
        url = opt_str(payload, "url")
        title = opt_str(item, "title") or opt_str(payload, "title")
        if payload.get("sticker_id") is not None or message.get("sticker_id") is not None:
            attachments.append(Attachment("sticker", url=url))
        elif kind in ("image", "video", "audio", "file"):
            attachments.append(Attachment(kind, url=url, title=title))
        elif kind == "location":
            coordinates = opt_object(payload, "coordinates") or {}
            lat, lon = coordinates.get("lat"), coordinates.get("long")
            where = f"{lat}, {lon}" if lat is not None and lon is not None else None
            attachments.append(Attachment("location", url=url, title=title or where))
        elif kind in ("share", "ig_post", "ig_reel", "reel", "story_mention", "fallback"):
            attachments.append(Attachment("link", url=url, title=title or kind))
        else:
            attachments.append(
                Attachment("unsupported", url=url, title=f"unsupported message type: {kind}")
            )
    return attachments
