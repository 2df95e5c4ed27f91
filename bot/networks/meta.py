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
stored as the id of its own reply (the Send API returns it). An echo of a template, or
one in `standby` (another app holds the thread), is also `automated`. Comments written
by the Page / the Instagram account itself are treated the same way.

Edits (`message_edit`, comment `verb: edited`), unsends (`is_deleted`, comment `verb:
remove`) and `reaction`s become `CustomerEdit` / `CustomerRemoval` / `CustomerReaction`;
a `postback` is a message reading `tapped: <title>`; reads and deliveries are nothing.

Every item of every entry is handled; an item that cannot be read is skipped and
reported (`parse_report`), and `parse` logs it at WARNING with its ids only.

Customer DMs carry `window_closes_at` (24 hours after the message) and
`human_agent_window_closes_at` (7 days, the HUMAN_AGENT tag limit) in `reply_context`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.config import ConfigError, Settings
from bot.networks import rating
from bot.networks.base import (
    Attachment,
    CustomerEdit,
    CustomerRating,
    CustomerReaction,
    CustomerRemoval,
    DeliveryError,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    MediaStream,
    MediaUnavailable,
    NotSupported,
    OutboundReply,
    OutgoingFile,
    PayloadError,
    Profile,
    PublicMention,
    SentMessagesFixed,
    SentReceipt,
    check_hex_signature,
)
from bot.networks.graph import (
    MESSAGING_WINDOW,
    GraphError,
    graph_delivery_error,
    hub_handshake,
    signature_header,
    user_profile,
)
from bot.networks.http import (
    UPLOAD_TIMEOUT_SECONDS,
    HttpAnswer,
    JsonHttp,
    JSONObject,
    file_form,
)
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
    location_line,
    media_line,
    opt_id,
    opt_list,
    opt_object,
    opt_str,
    shown,
    tapped_line,
    unknown_part,
)

HUMAN_AGENT_WINDOW = timedelta(days=7)
# `messaging[]` items that are about a message; reads, deliveries, referrals, opt-ins... are not.
HANDLED = ("message", "message_edit", "reaction", "postback")


def entry_time(entry: Mapping[str, Any]) -> datetime:
    """`entry.time`: milliseconds for messaging entries, seconds for `changes` entries."""
    value = entry.get("time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch(value, milliseconds=value > 100_000_000_000, what="entry.time")
    if isinstance(value, str):
        return epoch(value, milliseconds=False, what="entry.time")
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


class MetaNetwork(SentMessagesFixed):
    label = "Messenger and Instagram"
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
                        else self._messaging(
                            kind, as_object(item, "messaging item"), standby=list_name == "standby"
                        )
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

    def _messaging(self, kind: str, item: JSONObject, *, standby: bool) -> InboundEvent | None:
        """A Messenger / Instagram `messaging[]` item: a message, an echo, an edit, a
        deletion, a reaction or a button tap; None for reads, deliveries and the like."""
        if not any(key in item for key in HANDLED):
            return None
        sender = get_id(get_object(item, "sender"), "id")
        recipient = get_id(get_object(item, "recipient"), "id")
        sent_at = epoch(item.get("timestamp"), milliseconds=True, what="timestamp")
        prefix = "ig" if kind == "instagram" else "page"
        message = opt_object(item, "message")
        if message is not None and message.get("is_echo") is True:
            return self._echo(kind, sender, recipient, sent_at, message, standby=standby)
        key = f"{prefix}:{recipient}:{sender}"
        if message is not None:
            mid = get_id(message, "mid")
            if message.get("is_deleted") is True:  # unsent by the customer
                return CustomerRemoval(self.name, key, f"{mid}:deleted", mid, sent_at)
            quick_reply = opt_object(message, "quick_reply")
            answer = rating.read_payload(quick_reply.get("payload")) if quick_reply else None
            if answer is not None:  # a tap on one of our rating question's quick replies
                return CustomerRating(self.name, key, mid, *answer, sent_at)
            text, attachments = _message_content(message)
            return self._customer(kind, sender, recipient, sent_at, mid, text, attachments)
        if (edit := opt_object(item, "message_edit")) is not None:
            mid = get_id(edit, "mid")
            number = opt_id(edit, "num_edit") or str(int(sent_at.timestamp()))
            text = opt_str(edit, "text") or ""
            return CustomerEdit(self.name, key, f"{mid}:edit:{number}", mid, text, (), sent_at)
        if (reaction := opt_object(item, "reaction")) is not None:
            target = get_id(reaction, "mid")
            action = opt_str(reaction, "action") or "react"
            emoji = opt_str(reaction, "emoji") or opt_str(reaction, "reaction") or ""
            stamp = int(sent_at.timestamp() * 1000)
            event_id = f"{target}:{sender}:{action}:{stamp}"
            removed = action == "unreact"
            return CustomerReaction(self.name, key, event_id, target, emoji, removed, sent_at)
        if (postback := opt_object(item, "postback")) is not None:
            title = opt_str(postback, "title") or opt_str(postback, "payload") or "a button"
            mid = opt_id(postback, "mid") or f"postback:{sender}:{int(sent_at.timestamp() * 1000)}"
            text = shown(tapped_line(title), _referral_line(opt_object(postback, "referral")))
            return self._customer(kind, sender, recipient, sent_at, mid, text, [])
        return None

    def _customer(
        self,
        kind: str,
        customer: str,
        account: str,
        sent_at: datetime,
        mid: str,
        text: str,
        attachments: list[Attachment],
    ) -> InboundMessage:
        prefix = "ig" if kind == "instagram" else "page"
        return InboundMessage(
            network=self.name,
            conversation_key=f"{prefix}:{account}:{customer}",
            message_id=mid,
            author_id=customer,
            author_name=customer,
            text=text,
            sent_at=sent_at,
            attachments=tuple(attachments),
            reply_context={
                "channel": "instagram" if kind == "instagram" else "messenger",
                "page_id": account,
                "recipient_id": customer,
                "window_closes_at": (sent_at + MESSAGING_WINDOW).isoformat(),
                "human_agent_window_closes_at": (sent_at + HUMAN_AGENT_WINDOW).isoformat(),
            },
        )

    def _echo(
        self,
        kind: str,
        account: str,
        customer: str,
        sent_at: datetime,
        message: JSONObject,
        *,
        standby: bool,
    ) -> InboundMessage:
        """What the Page sent: from Meta's inbox, another app, or this app's Send API (the
        relay drops those). Another app's template, or anything sent while another app
        holds the thread (standby), is an automated message, not a person's answer."""
        text, attachments = _message_content(message)
        context: dict[str, Any] = {
            "channel": "instagram" if kind == "instagram" else "messenger",
            "page_id": account,
            "recipient_id": customer,
        }
        app_id = opt_id(message, "app_id")
        if app_id is not None:
            context["app_id"] = app_id
        templates = [a for a in opt_list(message, "attachments") if _type(a) == "template"]
        return InboundMessage(
            network=self.name,
            conversation_key=f"{'ig' if kind == 'instagram' else 'page'}:{account}:{customer}",
            message_id=get_id(message, "mid"),
            author_id=account,
            author_name="Instagram account" if kind == "instagram" else "Facebook Page",
            text=text,
            sent_at=sent_at,
            attachments=tuple(attachments),
            reply_context=context,
            from_team=True,
            automated=standby or bool(templates),
            customer_id=None if standby or templates else customer,
        )

    def _change(self, kind: str, entry: JSONObject, change: JSONObject) -> InboundEvent | None:
        """A `changes[]` item: Page `feed` comments and Instagram `comments`."""
        field_name = change.get("field")
        value = get_object(change, "value")
        if kind == "page" and (field_name == "mention" or value.get("item") == "mention"):
            return self._page_mention(entry, value)
        if kind == "page" and field_name == "feed":
            return self._page_comment(entry, value)
        if kind == "instagram" and field_name == "comments":
            return self._instagram_comment(entry, value)
        if kind == "instagram" and field_name == "mentions":
            return self._instagram_mention(entry, value)
        return None

    def _page_mention(self, entry: JSONObject, value: JSONObject) -> PublicMention | None:
        """The Page @mentioned in someone's post or comment (field `mention`, Page webhooks
        reference; captured example in the shared corpus, `fb_mention_comment`). Opened,
        it becomes a Page comment conversation: the reply is a comment on that comment,
        or on the post."""
        if value.get("verb") not in (None, "add"):
            return None  # edits and removals of a mention are not new mentions
        page_id = get_id(entry, "id")
        post_id = get_id(value, "post_id")
        comment_id = opt_id(value, "comment_id")
        author = opt_object(value, "from") or {}
        author_id = opt_id(author, "id") or opt_id(value, "sender_id")
        author_name = opt_str(author, "name") or opt_str(value, "sender_name")
        created = value.get("created_time")
        thread = comment_id or post_id
        return PublicMention(
            source="facebook",
            external_id=thread,
            author_id=author_id or "",
            author_name=author_name or author_id or "someone on Facebook",
            text=opt_str(value, "message") or "",
            sent_at=entry_time(entry)
            if created is None
            else epoch(created, milliseconds=False, what="created_time"),
            url=f"https://www.facebook.com/{quote(thread, safe='_')}",
            tagged=True,
            network=self.name,
            conversation_key=f"comment:{thread}",
            reply_context={
                "channel": "facebook_comment",
                "page_id": page_id,
                "post_id": post_id,
                "comment_id": thread,
            },
        )

    def _instagram_mention(self, entry: JSONObject, value: JSONObject) -> PublicMention:
        """The account @mentioned in a comment or a caption (field `mentions`: only
        `media_id` and, for a comment, `comment_id`). The words and author are not in the
        webhook, and a reply goes through `/{ig-user-id}/mentions`, which this adapter
        does not send yet: shown for listening, answered on Instagram."""
        media_id = get_id(value, "media_id")
        comment_id = opt_id(value, "comment_id")
        where = "a comment" if comment_id else "a caption"
        return PublicMention(
            source="instagram",
            external_id=comment_id or media_id,
            author_id="",
            author_name="someone on Instagram",
            text=f"[mentioned the account in {where} · media {media_id}]",
            sent_at=entry_time(entry),
            tagged=True,
        )

    def _page_comment(self, entry: JSONObject, value: JSONObject) -> InboundEvent | None:
        # Shape: https://developers.facebook.com/docs/graph-api/webhooks/reference/page (feed);
        # captured examples in restfb/restfb src/test/resources/json/webhooks/feed-comment-*.
        if value.get("item") != "comment":
            return None  # posts, likes and reactions are not messages
        verb = value.get("verb")
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
        key = f"comment:{thread}"
        attachments = [
            Attachment(kind_name, url=url)
            for name, kind_name in (("photo", "image"), ("video", "video"))
            if (url := opt_str(value, name))
        ]
        text = shown(opt_str(value, "message"), *(media_line(a) for a in attachments))
        if verb in ("edited", "remove") and author_id != page_id:
            if verb == "remove":
                return CustomerRemoval(self.name, key, f"{comment_id}:removed", comment_id, sent_at)
            event_id = f"{comment_id}:edit:{int(sent_at.timestamp())}"
            return CustomerEdit(
                self.name, key, event_id, comment_id, text, tuple(attachments), sent_at
            )
        if verb != "add":
            return None  # hidden comments, and the Page's own edits and removals
        return InboundMessage(
            network=self.name,
            conversation_key=key,
            message_id=comment_id,
            author_id=author_id,
            author_name=author_name or author_id,
            text=text,
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
            text=shown(opt_str(value, "text")) or unknown_part(self.name, "empty comment"),
            sent_at=entry_time(entry),
            reply_context=context,
            from_team=author_id == account_id,
        )

    # -- outbound -------------------------------------------------------------------
    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        """Messenger, Instagram, or a public comment reply (`channel` names them alike)."""
        return str(reply_context.get("channel") or "messenger")

    def public_link(self, reply_context: Mapping[str, Any], message_id: str) -> str | None:
        """A Page comment's id opens it at facebook.com/<id>; an Instagram comment id
        gives no public address (only its media's permalink does)."""
        if reply_context.get("channel") != "facebook_comment" or not message_id:
            return None
        return f"https://www.facebook.com/{quote(message_id, safe='_')}"

    async def send(self, reply: OutboundReply) -> SentReceipt:
        context = reply.reply_context
        channel = context.get("channel")
        if channel in ("messenger", "instagram"):
            # https://developers.facebook.com/docs/messenger-platform/reference/send-api/
            message: JSONObject = {"text": reply.text}
            if reply.survey_id is not None:
                message["quick_replies"] = _rating_quick_replies(reply.survey_id)
            return await self._send_message(context, message)
        if channel == "facebook_comment":
            # POST /{comment-id}/comments with `message` replies in the comment's thread.
            url = f"{self._graph_url}/{context_id(context, 'comment_id')}/comments"
        elif channel == "instagram_comment":
            # POST /{ig-comment-id}/replies (Instagram comment moderation guide).
            url = f"{self._graph_url}/{context_id(context, 'comment_id')}/replies"
        else:
            raise DeliveryError(
                f"cannot reply: unknown Meta channel {channel!r} in the conversation",
                temporary=False,
            )
        answer = await self._http.post(url, {"message": reply.text}, self._auth)
        return SentReceipt(_sent_id(self._checked(answer), "id"))

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        """Messenger takes attachments of up to 25 MB; Instagram images (PNG, JPEG, GIF)
        of up to 8 MB and some videos, audio and PDFs of up to 25 MB; comment replies
        are text only."""
        channel = reply_context.get("channel")
        if channel == "messenger":
            return ATTACHMENT_LIMIT
        if channel == "instagram":
            return _instagram_type(mimetype)[1]
        raise NotSupported(f"replies to {_label(reply_context)} take text only")

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        """The Attachment Upload API (`/me/message_attachments`, multipart, streamed from
        the spool file) gives an `attachment_id`; the Send API then sends it."""
        if reply_context.get("channel") == "instagram":
            kind = _instagram_type(file.mimetype)[0]
            fields = {"platform": "instagram"}
        else:
            kind = _messenger_type(file.mimetype)
            fields = {}
        attachment = {"type": kind, "payload": {"is_reusable": True}}
        fields["message"] = json.dumps({"attachment": attachment})
        with file_form(fields, "filedata", file) as form:
            answer = await self._http.post(
                f"{self._graph_url}/me/message_attachments",
                headers=self._auth,
                form=form,
                timeout=UPLOAD_TIMEOUT_SECONDS,
            )
        attachment_id = answer.data.get("attachment_id") if answer.data else None
        if not (200 <= answer.status < 300 and isinstance(attachment_id, str | int)):
            raise self._upload_error(answer)
        sent = {"type": kind, "payload": {"attachment_id": str(attachment_id)}}
        return await self._send_message(reply_context, {"attachment": sent})

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        """A Page may edit its own comment: POST /{comment-id} with the new `message`."""
        if reply.reply_context.get("channel") != "facebook_comment":
            raise NotSupported(f"{_label(reply.reply_context)} do not let a sent reply be edited")
        answer = await self._http.post(
            f"{self._graph_url}/{quote(message_id, safe='_')}", {"message": reply.text}, self._auth
        )
        self._checked(answer)

    async def delete(
        self, reply_context: Mapping[str, Any], message_id: str, sent: datetime
    ) -> None:
        """A Page or Instagram account may delete its own comment: DELETE /{comment-id}."""
        if reply_context.get("channel") not in ("facebook_comment", "instagram_comment"):
            raise NotSupported(f"{_label(reply_context)} do not let a sent message be deleted")
        answer = await self._http.delete(
            f"{self._graph_url}/{quote(message_id, safe='_')}", self._auth
        )
        self._checked(answer)

    async def _send_message(self, context: Mapping[str, Any], message: JSONObject) -> SentReceipt:
        """A Send API message (text or attachment) to the DM's recipient."""
        payload: JSONObject = {
            "recipient": {"id": context_id(context, "recipient_id")},
            "messaging_type": "RESPONSE",
            "message": message,
        }
        answer = await self._http.post(f"{self._graph_url}/me/messages", payload, self._auth)
        return SentReceipt(_sent_id(self._checked(answer), "message_id"))

    def _checked(self, answer: HttpAnswer) -> JSONObject:
        """A successful Graph answer's body; a `DeliveryError` otherwise."""
        if 200 <= answer.status < 300:
            return answer.data or {}
        error = GraphError.read(answer)
        raise graph_delivery_error(
            answer,
            platform="Meta",
            temporary_codes=META_TEMPORARY_CODES,
            window_closed=error.code == 10 and error.subcode in META_WINDOW_SUBCODES,
            window_message=META_WINDOW_MESSAGE,
        )

    def _upload_error(self, answer: HttpAnswer) -> DeliveryError:
        """A refused upload is about this file: named in the thread, the rest still goes."""
        try:
            self._checked(answer)
        except DeliveryError as error:
            if error.temporary:
                return error
        return NotSupported(f"Meta refused the upload: {GraphError.read(answer).describe()}")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._page_token}"}

    async def close(self) -> None:
        await self._http.close()

    async def profile(self, reply_context: Mapping[str, Any], customer_id: str) -> Profile | None:
        """Messenger and Instagram customers' names (comments carry their own)."""
        channel = str(reply_context.get("channel") or "")
        return await user_profile(
            self._http, self._graph_url, self._page_token, channel, customer_id
        )

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """Messenger and Instagram give each attachment a signed CDN URL (`payload.url`)."""
        if not attachment.url:
            raise MediaUnavailable("Meta gave no URL for it", temporary=False)
        return await download("Meta", attachment.url, attachment, link=attachment.url)


MB = 1024 * 1024
# https://developers.facebook.com/docs/messenger-platform/reference/attachment-upload-api
# and .../instagram/features/attachment-upload ("Supported Format", "Supported Size").
ATTACHMENT_LIMIT = 25 * MB
INSTAGRAM_TYPES: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/png", "image/jpeg", "image/gif"}), 8 * MB),
    "video": (
        frozenset({"video/mp4", "video/ogg", "video/avi", "video/quicktime", "video/webm"}),
        25 * MB,
    ),
    "audio": (
        frozenset({"audio/aac", "audio/mp4", "audio/x-m4a", "audio/wav", "audio/x-wav"}),
        25 * MB,
    ),
    "file": (frozenset({"application/pdf"}), 25 * MB),
}
CHANNEL_LABELS = {
    "messenger": "Messenger",
    "instagram": "Instagram",
    "facebook_comment": "Facebook Page comments",
    "instagram_comment": "Instagram comments",
}


def _label(context: Mapping[str, Any]) -> str:
    return CHANNEL_LABELS.get(str(context.get("channel")), "Meta")


def _messenger_type(mimetype: str) -> str:
    kind = mimetype.partition("/")[0]
    return kind if kind in ("image", "video", "audio") else "file"


def _instagram_type(mimetype: str) -> tuple[str, int]:
    """Instagram's attachment type for a file and its size limit; `NotSupported` for a
    type Instagram does not take."""
    for kind, (types, limit) in INSTAGRAM_TYPES.items():
        if mimetype in types:
            return kind, limit
    raise NotSupported(
        f"Instagram takes images (PNG, JPEG, GIF), videos, audio and PDFs only, not {mimetype}"
    )


def _sent_id(data: JSONObject, key: str) -> str | None:
    sent_id = data.get(key)
    return str(sent_id) if isinstance(sent_id, str | int) else None


# Messenger / Instagram attachments that are links, with how they are introduced.
LINKS = {
    "share": "shared",
    "story_mention": "mentioned you in their story",
    "ig_reel": "shared a reel",
    "reel": "shared a reel",
    "ig_post": "shared a post",
    "fallback": "link",
    "template": "template message",
    "product": "product",
}


def _rating_quick_replies(survey_id: int) -> list[JSONObject]:
    """Messenger and Instagram take up to 13 text quick replies of 20 characters."""
    return [
        {"content_type": "text", "title": rating.LABELS[n], "payload": rating.payload(survey_id, n)}
        for n in rating.SCORES
    ]


def _message_content(message: JSONObject) -> tuple[str, list[Attachment]]:
    """What the team reads of a Messenger / Instagram message, and the media to download."""
    lines, files = [], []
    if message.get("is_unsupported") is True:
        lines.append(unknown_part("meta", "is_unsupported"))
    for raw in opt_list(message, "attachments"):
        line, attachment = _attachment(raw, sticker=message.get("sticker_id") is not None)
        lines.append(line)
        if attachment is not None:
            files.append(attachment)
    text = opt_str(message, "text") or ""
    if text and opt_object(message, "quick_reply") is not None:
        text = tapped_line(text)
    replied = _reply_line(opt_object(message, "reply_to"))
    referral = _referral_line(opt_object(message, "referral"))
    body = shown(replied, text, *lines, referral)
    return body or unknown_part("meta", "empty message"), files


def _attachment(raw: Any, *, sticker: bool) -> tuple[str, Attachment | None]:
    """One attachment's line, and the file when it is media; an odd one is a placeholder."""
    if not isinstance(raw, dict):
        return unknown_part("meta", "attachment that is not an object"), None
    kind = _type(raw) or "unknown"
    payload = raw.get("payload")
    payload = payload if isinstance(payload, dict) else {}  # fallback links send a string
    url = opt_str(payload, "url") or opt_str(raw, "url")
    title = opt_str(raw, "title") or opt_str(payload, "title")
    if sticker or payload.get("sticker_id") is not None:
        attachment = Attachment("sticker", url=url)
        return media_line(attachment), attachment
    if kind in ("image", "video", "audio", "file"):
        attachment = Attachment(kind, url=url, title=title or None)
        return media_line(attachment), attachment
    if kind == "location":
        coordinates = opt_object(payload, "coordinates")
        if coordinates is not None:
            return location_line(coordinates.get("lat"), coordinates.get("long"), title), None
    if kind in LINKS:
        words = " · ".join(w for w in (LINKS[kind], title) if w)
        return shown(f"[{words}]", url).replace("\n", " "), None
    return shown(unknown_part("meta", kind), url).replace("\n", " "), None


def _type(raw: Any) -> str | None:
    value = raw.get("type") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _reply_line(reply_to: JSONObject | None) -> str | None:
    if reply_to is None:
        return None
    story = opt_object(reply_to, "story")
    if story is not None:
        return shown("[replied to your story]", opt_str(story, "url")).replace("\n", " ")
    return "[in reply to an earlier message]"


def _referral_line(referral: JSONObject | None) -> str | None:
    """Where the customer came from (an ad, a m.me link), shown once with the message."""
    if referral is None:
        return None
    ads = opt_object(referral, "ads_context_data") or {}
    words = [
        opt_str(referral, "source"),
        opt_str(ads, "ad_title") or opt_id(referral, "ad_id"),
        opt_str(referral, "ref"),
        opt_str(referral, "source_url"),
    ]
    return f"[came from: {' · '.join(w for w in words if w) or 'a referral'}]"
