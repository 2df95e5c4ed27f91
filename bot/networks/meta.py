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

The helpers at the top (JSON access, timestamps, the HTTP client, Graph error mapping)
are shared with the WhatsApp and X adapters.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.config import ConfigError, Settings
from bot.networks.base import (
    Attachment,
    DeliveryError,
    ForbiddenError,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    OutboundReply,
    PayloadError,
    SentReceipt,
    check_hex_signature,
)
from bot.networks.http import HttpAnswer, JsonHttp, JSONObject, retry_after

log = logging.getLogger(__name__)

MESSAGING_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)


# -- reading JSON -------------------------------------------------------------------------
def load_object(body: bytes) -> JSONObject:
    """Decode a webhook body that must be a JSON object."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("body is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    return data


def as_object(value: Any, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise PayloadError(f"{what} is not an object")
    return value


def get_object(data: Mapping[str, Any], key: str) -> JSONObject:
    return as_object(data.get(key), key)


def opt_object(data: Mapping[str, Any], key: str) -> JSONObject | None:
    value = data.get(key)
    return None if value is None else as_object(value, key)


def get_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise PayloadError(f"{key} is not a list")
    return value


def opt_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return [] if value is None else get_list(data, key)


def opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{key} is not a string")
    return value


def get_str(data: Mapping[str, Any], key: str) -> str:
    value = opt_str(data, key)
    if value is None:
        raise PayloadError(f"{key} is missing")
    return value


def opt_id(data: Mapping[str, Any], key: str) -> str | None:
    """An id sent as a string or a number (Meta and X send both)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{key} is not an id")
    text = str(value)
    if not text:
        raise PayloadError(f"{key} is empty")
    return text


def get_id(data: Mapping[str, Any], key: str) -> str:
    value = opt_id(data, key)
    if value is None:
        raise PayloadError(f"{key} is missing")
    return value


def epoch(value: Any, *, milliseconds: bool, what: str) -> datetime:
    """A Unix timestamp (number or numeric string) as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(f"{what} is not a timestamp")
    try:
        number = float(value)
    except ValueError:
        raise PayloadError(f"{what} is not a timestamp") from None
    if not math.isfinite(number):
        raise PayloadError(f"{what} is not a timestamp")
    try:
        return datetime.fromtimestamp(number / 1000 if milliseconds else number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{what} is out of range") from None


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """`entry.time`: milliseconds for messaging entries, seconds for `changes` entries."""
    value = entry.get("time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch(value, milliseconds=value > 100_000_000_000, what="entry.time")
    raise PayloadError("entry.time is missing")


def summary(text: str, attachments: list[Attachment]) -> str:
    """The message text, or placeholders naming the attachments so Slack is never empty."""
    if text.strip():
        return text
    labels = [attachment_label(a) for a in attachments] or ["empty message"]
    return " ".join(f"[{label}]" for label in labels)


def attachment_label(attachment: Attachment) -> str:
    if attachment.kind == "unsupported":
        return attachment.title or "unsupported message type"
    if attachment.kind == "location" and attachment.title:
        return f"location: {attachment.title}"
    return attachment.kind


# -- parse results ------------------------------------------------------------------------
@dataclass(frozen=True)
class SkippedItem:
    """An item of a batch that could not be read: where it was and its ids (never text)."""

    where: str
    ids: str
    reason: str


@dataclass(frozen=True)
class ParseResult:
    events: list[InboundEvent] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)

    def logged(self, network: str) -> list[InboundEvent]:
        for item in self.skipped:
            log.warning(
                "%s webhook: skipped %s (%s): %s", network, item.where, item.ids, item.reason
            )
        return self.events


def item_ids(item: Any, *paths: tuple[str, ...]) -> str:
    """`key=value` for the ids found at `paths` inside an item, for logs."""
    found = []
    for path in paths:
        value: Any = item
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool):
            found.append(f"{'.'.join(path)}={value}")
    return ", ".join(found) or "no ids"


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a Graph API answer."""

    status: int
    code: int | None
    subcode: int | None
    message: str
    details: str | None

    @classmethod
    def read(cls, answer: HttpAnswer) -> GraphError:
        error = answer.data.get("error") if answer.data else None
        if not isinstance(error, dict):
            return cls(answer.status, None, None, f"HTTP {answer.status}", None)
        code, subcode = error.get("code"), error.get("error_subcode")
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        message = error.get("error_user_msg") or error.get("message")
        return cls(
            status=answer.status,
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            subcode=subcode if isinstance(subcode, int) and not isinstance(subcode, bool) else None,
            message=message if isinstance(message, str) and message else f"HTTP {answer.status}",
            details=details if isinstance(details, str) else None,
        )

    def describe(self) -> str:
        parts = [self.message]
        if self.details and self.details != self.message:
            parts.append(self.details)
        code = f"code {self.code}" if self.code is not None else f"HTTP {self.status}"
        if self.subcode is not None:
            code += f"/{self.subcode}"
        return f"{': '.join(parts)} ({code})"


def graph_delivery_error(
    answer: HttpAnswer,
    *,
    platform: str,
    temporary_codes: frozenset[int],
    window_closed: bool,
    window_message: str,
) -> DeliveryError:
    """Map a failed Graph API answer to a `DeliveryError` (see the callers for the codes)."""
    error = GraphError.read(answer)
    if window_closed:
        return DeliveryError(
            f"{window_message} ({platform}: {error.describe()})",
            temporary=False,
            window_closed=True,
        )
    if answer.status == 429 or answer.status >= 500 or error.code in temporary_codes:
        return DeliveryError(
            f"{platform} is busy or rate-limiting; the reply will be retried ({error.describe()})",
            temporary=True,
            retry_after=retry_after(answer.headers),
        )
    return DeliveryError(f"{platform} refused the reply: {error.describe()}", temporary=False)


def hub_handshake(query: Mapping[str, str], verify_token: str) -> HandshakeAnswer:
    """Meta's subscription handshake: echo `hub.challenge` for our verify token only."""
    token = query.get("hub.verify_token", "")
    if query.get("hub.mode") != "subscribe" or not _same(token, verify_token):
        raise ForbiddenError("wrong hub.mode or hub.verify_token")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise ForbiddenError("missing hub.challenge")
    return HandshakeAnswer(200, challenge)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def signature_header(headers: Mapping[str, str]) -> str | None:
    """`X-Hub-Signature-256`, whatever the case of the mapping's keys."""
    value = headers.get("X-Hub-Signature-256")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "x-hub-signature-256"), None)
    return value


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
                "recipient": {"id": _context_id(context, "recipient_id")},
                "messaging_type": "RESPONSE",
                "message": {"text": reply.text},
            }
            id_key = "message_id"
        elif channel == "facebook_comment":
            # POST /{comment-id}/comments with `message` replies in the comment's thread.
            url = f"{self._graph_url}/{_context_id(context, 'comment_id')}/comments"
            payload, id_key = {"message": reply.text}, "id"
        elif channel == "instagram_comment":
            # POST /{ig-comment-id}/replies (Instagram comment moderation guide).
            url = f"{self._graph_url}/{_context_id(context, 'comment_id')}/replies"
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


def _context_id(context: Mapping[str, Any], key: str) -> str:
    value = context.get(key)
    if not isinstance(value, str) or not value:
        raise DeliveryError(f"cannot reply: the conversation has no {key}", temporary=False)
    return value


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
