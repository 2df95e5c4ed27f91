"""WhatsApp Cloud API adapter (network `whatsapp`).

Webhook: `object: whatsapp_business_account`, `entry[].changes[]` with `field: messages`,
signed like every Meta webhook (`X-Hub-Signature-256`, the Meta app secret).
Shapes: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages

- `value.messages[]` become `InboundMessage`s in conversation `wa:<phone_number_id>:<wa_id>`
  (`message_id` = the `wamid`); `reply_context` holds the phone number id, the `wa_id` and
  `window_closes_at` (24 hours after the message: the customer service window).
- `value.statuses[]` (sent, delivered, read, failed) become `DeliveryStatus`es for the
  `wamid` our `send` returned; a failed one carries the error title.

Media arrive as media ids; WhatsApp only gives a download URL to a token holder, so an
attachment has a `url` only when the webhook includes one. Files from the team go the
same way back: uploaded to `/{phone-number-id}/media`, then sent by the id it returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

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
    DeliveryStatus,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    MediaStream,
    MediaUnavailable,
    Notice,
    NotSupported,
    OutboundReply,
    OutgoingFile,
    PayloadError,
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
)
from bot.networks.http import (
    UPLOAD_TIMEOUT_SECONDS,
    HttpAnswer,
    JsonHttp,
    JSONObject,
    file_form,
)
from bot.networks.media import download, get_json
from bot.networks.payload import (
    ParseResult,
    SkippedItem,
    as_object,
    contact_line,
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

log = logging.getLogger(__name__)

# Cloud API error codes (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):
#   131047 "Re-engagement message": more than 24 hours since the customer last replied
#   (470 is the same error in the older On-Premises API);
#   4 API calls too many, 80007 WABA rate limit, 130429 "Rate limit hit" (throughput),
#   131056 pair rate limit (too many messages to one number), 131016 service unavailable.
WHATSAPP_WINDOW_CODES = frozenset({131047, 470})
WHATSAPP_TEMPORARY_CODES = frozenset({4, 80007, 130429, 131016, 131056})
WHATSAPP_WINDOW_MESSAGE = (
    "Not delivered: more than 24 hours have passed since the customer's last WhatsApp "
    "message, so WhatsApp only accepts an approved message template now. Send an approved "
    "template (WhatsApp Manager) to re-open the conversation, or wait for the customer to "
    "write again."
)
MEDIA_KINDS = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "file",
    "sticker": "sticker",
}
# What WhatsApp plays as image, video or audio, and up to which size; anything else goes
# as a document (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media,
# "Supported media types").
MB = 1024 * 1024
DOCUMENT_LIMIT = 100 * MB
MEDIA_TYPES: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "audio": (
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        16 * MB,
    ),
}
STATUSES: dict[str, Literal["sent", "delivered", "read", "failed"]] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


class WhatsAppNetwork(SentMessagesFixed):
    label = "WhatsApp"
    """WhatsApp Cloud API: one business phone number (network `whatsapp`)."""

    name = "whatsapp"

    def __init__(
        self,
        *,
        app_secret: str,
        verify_token: str,
        token: str,
        phone_number_id: str,
        graph_url: str = "https://graph.facebook.com/v25.0",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._app_secret = app_secret
        self._verify_token = verify_token
        self._token = token
        self._phone_number_id = phone_number_id
        self._graph_url = graph_url.rstrip("/")
        self._http = JsonHttp("WhatsApp", session)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: aiohttp.ClientSession | None = None
    ) -> WhatsAppNetwork:
        if not (
            settings.meta_app_secret
            and settings.meta_verify_token
            and settings.whatsapp_token
            and settings.whatsapp_phone_number_id
        ):
            raise ConfigError(
                "META_APP_SECRET, META_VERIFY_TOKEN, WHATSAPP_TOKEN and "
                "WHATSAPP_PHONE_NUMBER_ID are all needed for WhatsApp"
            )
        return cls(
            app_secret=settings.meta_app_secret,
            verify_token=settings.meta_verify_token,
            token=settings.whatsapp_token,
            phone_number_id=settings.whatsapp_phone_number_id,
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
        if data.get("object") != "whatsapp_business_account":
            raise PayloadError("object is not 'whatsapp_business_account'")
        result = ParseResult()
        for e_index, raw_entry in enumerate(get_list(data, "entry")):
            try:
                changes = opt_list(as_object(raw_entry, "entry"), "changes")
            except PayloadError as exc:
                result.skipped.append(SkippedItem(f"entry[{e_index}]", "no ids", exc.message))
                continue
            for c_index, raw_change in enumerate(changes):
                where = f"entry[{e_index}].changes[{c_index}]"
                try:
                    change = as_object(raw_change, "change")
                    field_name = change.get("field")
                    if field_name == "messages":
                        self._value(get_object(change, "value"), where, result)
                    elif field_name == "smb_message_echoes":
                        self._echoes(get_object(change, "value"), where, result)
                    # template, quality and account updates are not messages
                except PayloadError as exc:
                    ids = item_ids(raw_change, ("value", "metadata", "phone_number_id"))
                    result.skipped.append(SkippedItem(where, ids, exc.message))
        return result

    def _value(self, value: JSONObject, where: str, result: ParseResult) -> None:
        phone_number_id = get_id(get_object(value, "metadata"), "phone_number_id")
        names = _contact_names(value)
        for list_name in ("messages", "statuses"):
            for index, raw in enumerate(opt_list(value, list_name)):
                try:
                    item = as_object(raw, list_name[:-1])
                    event = (
                        self._message(phone_number_id, names, item)
                        if list_name == "messages"
                        else self._status(item)
                    )
                except PayloadError as exc:
                    ids = item_ids(raw, ("id",), ("from",), ("recipient_id",))
                    result.skipped.append(
                        SkippedItem(f"{where}.{list_name}[{index}]", ids, exc.message)
                    )
                    continue
                if event is not None:
                    result.events.append(event)

    def _message(
        self, phone_number_id: str, names: Mapping[str, str], item: JSONObject
    ) -> InboundEvent | None:
        """A customer's message, or what it really is: a reaction, a deletion, an edit or
        a system notice (number changed)."""
        wa_id = get_id(item, "from")
        sent_at = epoch(item.get("timestamp"), milliseconds=False, what="timestamp")
        key = f"wa:{phone_number_id}:{wa_id}"
        event_id = get_id(item, "id")
        kind = _str_or_empty(item, "type")
        if kind == "reaction":
            reaction = get_object(item, "reaction")
            emoji = opt_str(reaction, "emoji") or ""
            return CustomerReaction(
                self.name, key, event_id, get_id(reaction, "message_id"), emoji, not emoji, sent_at
            )
        if kind == "revoke":  # the customer deleted a message for everyone
            target = get_id(get_object(item, "revoke"), "original_message_id")
            return CustomerRemoval(self.name, key, event_id, target, sent_at)
        if kind == "edit":
            edit = get_object(item, "edit")
            text, attachments = _content(get_object(edit, "message"))
            target = get_id(edit, "original_message_id")
            return CustomerEdit(self.name, key, event_id, target, text, tuple(attachments), sent_at)
        if kind == "system":
            system = get_object(item, "system")
            words = opt_str(system, "body") or f"WhatsApp system message: {opt_str(system, 'type')}"
            return Notice(self.name, key, event_id, words, sent_at)
        answer = _rating_answer(item)
        if answer is not None:  # a choice in our rating question's list
            return CustomerRating(self.name, key, event_id, *answer, sent_at)
        text, attachments = _content(item)
        return InboundMessage(
            network=self.name,
            conversation_key=key,
            message_id=event_id,
            author_id=wa_id,
            author_name=names.get(wa_id) or f"+{wa_id}",
            author_handle=f"+{wa_id}",
            text=shown(_context_line(item), text, _referral_line(item)),
            sent_at=sent_at,
            attachments=tuple(attachments),
            reply_context={
                "phone_number_id": phone_number_id,
                "wa_id": wa_id,
                "window_closes_at": (sent_at + MESSAGING_WINDOW).isoformat(),
            },
        )

    def _echoes(self, value: JSONObject, where: str, result: ParseResult) -> None:
        """`smb_message_echoes`: what the business sent from the WhatsApp Business app."""
        phone_number_id = get_id(get_object(value, "metadata"), "phone_number_id")
        for index, raw in enumerate(opt_list(value, "message_echoes")):
            try:
                item = as_object(raw, "message echo")
                wa_id = get_id(item, "to")
                text, attachments = _content(item)
                result.events.append(
                    InboundMessage(
                        network=self.name,
                        conversation_key=f"wa:{phone_number_id}:{wa_id}",
                        message_id=get_id(item, "id"),
                        author_id=opt_id(item, "from") or phone_number_id,
                        author_name="WhatsApp Business app",
                        text=text,
                        sent_at=epoch(item.get("timestamp"), milliseconds=False, what="timestamp"),
                        attachments=tuple(attachments),
                        reply_context={"phone_number_id": phone_number_id, "wa_id": wa_id},
                        from_team=True,
                        automated=item.get("type") == "template",
                    )
                )
            except PayloadError as exc:
                ids = item_ids(raw, ("id",), ("to",))
                result.skipped.append(
                    SkippedItem(f"{where}.message_echoes[{index}]", ids, exc.message)
                )

    def _status(self, item: JSONObject) -> DeliveryStatus | None:
        status = STATUSES.get(_str_or_empty(item, "status"))
        if status is None:
            return None  # e.g. "deleted" or newer states we do not track
        error = None
        if status == "failed":
            errors = [e for e in opt_list(item, "errors") if isinstance(e, dict)]
            titles = [opt_str(e, "title") or opt_str(e, "message") for e in errors]
            error = "; ".join(t for t in titles if t) or "failed without a reason"
            # The Cloud API often accepts a send and reports 131047 here afterwards.
            if any(e.get("code") in WHATSAPP_WINDOW_CODES for e in errors):
                error = f"{WHATSAPP_WINDOW_MESSAGE} ({error})"
        return DeliveryStatus(
            network=self.name,
            message_id=get_id(item, "id"),
            status=status,
            at=epoch(item.get("timestamp"), milliseconds=False, what="timestamp"),
            error=error,
        )

    # -- outbound -------------------------------------------------------------------
    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        return "whatsapp"

    async def send(self, reply: OutboundReply) -> SentReceipt:
        """POST /{phone-number-id}/messages with a text message; returns the `wamid`."""
        if reply.survey_id is not None:
            rating = _rating_list(reply.text, reply.survey_id)
            return await self._send_message(
                reply.reply_context, {"type": "interactive", "interactive": rating}
            )
        text = {"body": reply.text, "preview_url": False}
        return await self._send_message(reply.reply_context, {"type": "text", "text": text})

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        """Any file goes as a document of up to 100 MB; smaller images, videos and audio
        of the types WhatsApp plays go as such (`_media_kind`)."""
        return DOCUMENT_LIMIT

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        """Upload to POST /{phone-number-id}/media (multipart, streamed from the spool file),
        then send a message by the media id it returns."""
        phone_number_id = self._phone_number_id_of(reply_context)
        fields = {"messaging_product": "whatsapp", "type": file.mimetype}
        with file_form(fields, "file", file) as form:
            answer = await self._http.post(
                f"{self._graph_url}/{phone_number_id}/media",
                headers=self._auth,
                form=form,
                timeout=UPLOAD_TIMEOUT_SECONDS,
            )
        media_id = answer.data.get("id") if answer.data else None
        if not (200 <= answer.status < 300 and isinstance(media_id, str) and media_id):
            raise _upload_error(answer)
        kind = _media_kind(file)
        media: dict[str, Any] = {"id": media_id}
        if kind == "document":
            media["filename"] = file.name
        return await self._send_message(reply_context, {"type": kind, kind: media})

    async def _send_message(self, context: Mapping[str, Any], content: JSONObject) -> SentReceipt:
        """One message to the conversation's `wa_id`; its `wamid`, or a `DeliveryError`."""
        wa_id = context.get("wa_id")
        if not isinstance(wa_id, str) or not wa_id:
            raise DeliveryError("cannot reply: the conversation has no wa_id", temporary=False)
        answer = await self._http.post(
            f"{self._graph_url}/{self._phone_number_id_of(context)}/messages",
            {"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa_id}
            | content,
            self._auth,
        )
        if 200 <= answer.status < 300:
            messages = answer.data.get("messages") if answer.data else None
            first = messages[0] if isinstance(messages, list) and messages else None
            wamid = first.get("id") if isinstance(first, dict) else None
            return SentReceipt(wamid if isinstance(wamid, str) else None)
        error = GraphError.read(answer)
        raise graph_delivery_error(
            answer,
            platform="WhatsApp",
            temporary_codes=WHATSAPP_TEMPORARY_CODES,
            window_closed=error.code in WHATSAPP_WINDOW_CODES,
            window_message=WHATSAPP_WINDOW_MESSAGE,
        )

    def _phone_number_id_of(self, context: Mapping[str, Any]) -> str:
        phone_number_id = context.get("phone_number_id")
        if isinstance(phone_number_id, str) and phone_number_id:
            return phone_number_id
        return self._phone_number_id

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def close(self) -> None:
        await self._http.close()

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """GET /{media-id} gives a short-lived URL; both calls carry the token."""
        if not attachment.media_id:
            raise MediaUnavailable("WhatsApp gave no media id for it", temporary=False)
        auth = {"Authorization": f"Bearer {self._token}"}
        found = await get_json("WhatsApp", f"{self._graph_url}/{attachment.media_id}", auth)
        url = found.get("url")
        if not isinstance(url, str) or not url:
            raise MediaUnavailable("WhatsApp gave no URL for the media id", temporary=False)
        size = found.get("file_size")
        known = replace(
            attachment,
            mimetype=attachment.mimetype or _str_or_none(found, "mime_type"),
            size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )
        return await download("WhatsApp", url, known, headers=auth)


def _media_kind(file: OutgoingFile) -> str:
    """The message type a file goes as: image, video or audio when WhatsApp takes its type
    and size as such, otherwise a document."""
    for kind, (types, limit) in MEDIA_TYPES.items():
        if file.mimetype in types and file.size <= limit:
            return kind
    return "document"


def _upload_error(answer: HttpAnswer) -> DeliveryError:
    """A refused upload is about this file (its type, its content): named in the thread
    while the rest of the reply goes; throttling and outages are retried."""
    error = graph_delivery_error(
        answer,
        platform="WhatsApp",
        temporary_codes=WHATSAPP_TEMPORARY_CODES,
        window_closed=False,
        window_message="",
    )
    if error.temporary:
        return error
    return NotSupported(f"WhatsApp refused the upload: {GraphError.read(answer).describe()}")


def _str_or_none(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _str_or_empty(data: Mapping[str, Any], key: str) -> str:
    return opt_str(data, key) or ""


def _contact_names(value: JSONObject) -> dict[str, str]:
    """`contacts[]`: wa_id -> profile name (a bad contact only loses its name)."""
    names = {}
    for raw in opt_list(value, "contacts"):
        if not isinstance(raw, dict):
            continue
        wa_id, profile = raw.get("wa_id"), raw.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and isinstance(name, str) and name:
            names[wa_id] = name
    return names


def _content(item: JSONObject) -> tuple[str, list[Attachment]]:
    """What the team reads of one message, by its `type`, and the media to download."""
    kind = _str_or_empty(item, "type")
    if kind == "text":
        return opt_str(get_object(item, "text"), "body") or "", []
    if kind in MEDIA_KINDS:
        media = get_object(item, kind)
        attachment = Attachment(
            "voice" if kind == "audio" and media.get("voice") is True else MEDIA_KINDS[kind],
            url=opt_str(media, "url"),
            title=opt_str(media, "filename"),
            media_id=opt_id(media, "id"),
            mimetype=opt_str(media, "mime_type"),
        )
        return shown(opt_str(media, "caption"), media_line(attachment)), [attachment]
    if kind == "location":
        location = get_object(item, "location")
        words = (opt_str(location, "name"), opt_str(location, "address"))
        line = location_line(location.get("latitude"), location.get("longitude"), *words)
        place = opt_str(location, "url")  # a business's place page, when it is one
        return f"{line} {place}" if place else line, []
    if kind == "contacts":
        return shown(*(_contact(as_object(c, "contact")) for c in get_list(item, "contacts"))), []
    if kind == "order":
        return _order(get_object(item, "order")), []
    if kind == "button":  # a quick-reply button of a template message
        button = get_object(item, "button")
        return tapped_line(opt_str(button, "text") or opt_str(button, "payload") or "a button"), []
    if kind == "interactive" and isinstance(item.get("interactive"), dict):
        answer = _interactive(item["interactive"])
        if answer is not None:
            return answer, []
        kind = f"interactive {_str_or_empty(item['interactive'], 'type') or 'unknown'}"
    if kind == "unsupported":
        errors = [e for e in opt_list(item, "errors") if isinstance(e, dict)]
        details = [
            opt_str(e.get("error_data") or {}, "details") or opt_str(e, "title") for e in errors
        ]
        reason = "; ".join(d for d in details if d) or "not supported by WhatsApp"
        log.warning("whatsapp: an unsupported message (%s) shown as a placeholder", reason[:100])
        return f"[unsupported message type: {reason}]", []
    return unknown_part("whatsapp", kind or "unknown"), []


def _rating_list(question: str, survey_id: int) -> JSONObject:
    """An interactive list message: one row per score (ids up to 200 characters, titles
    up to 24), opened with the `PROMPT` button."""
    rows = [{"id": rating.payload(survey_id, n), "title": rating.LABELS[n]} for n in rating.SCORES]
    return {
        "type": "list",
        "body": {"text": question},
        "action": {"button": rating.PROMPT, "sections": [{"title": "Your rating", "rows": rows}]},
    }


def _rating_answer(item: JSONObject) -> tuple[int, int] | None:
    """(survey, score) of a list choice or reply button tapped in our rating question."""
    interactive = item.get("interactive") if item.get("type") == "interactive" else None
    if not isinstance(interactive, dict):
        return None
    choice = opt_object(interactive, "list_reply") or opt_object(interactive, "button_reply")
    return rating.read_payload(choice.get("id")) if choice is not None else None


def _interactive(interactive: JSONObject) -> str | None:
    """A tapped reply button or list choice, or the answers of a submitted form (flow)."""
    choice = opt_object(interactive, "button_reply") or opt_object(interactive, "list_reply")
    if choice is not None:
        return tapped_line(opt_str(choice, "title") or opt_str(choice, "id") or "a button")
    form = opt_object(interactive, "nfm_reply")
    if form is None:
        return None
    raw = opt_str(form, "response_json") or "{}"
    try:
        answers = json.loads(raw)
    except ValueError:
        answers = None
    if not isinstance(answers, dict):
        raise PayloadError("nfm_reply.response_json is not a JSON object")
    lines = [
        f"• {name.replace('_', ' ')}: {value}"
        for name, value in answers.items()
        if name != "flow_token" and isinstance(value, str | int | float | bool)
    ]
    title = opt_str(form, "name") or "form"
    return shown(f"[form answers: {title}]", *lines)


def _contact(contact: JSONObject) -> str:
    name = opt_object(contact, "name") or {}
    phones = [opt_str(as_object(p, "phone"), "phone") for p in opt_list(contact, "phones")]
    full = opt_str(name, "formatted_name") or opt_str(name, "first_name")
    return contact_line(full, [p for p in phones if p])


def _order(order: JSONObject) -> str:
    """A catalog order: one line per item with its quantity and price."""
    lines = [opt_str(order, "text") or ""]
    for raw in get_list(order, "product_items"):
        product = as_object(raw, "product item")
        name = opt_str(product, "product_retailer_id") or "item"
        quantity, price = product.get("quantity"), product.get("item_price")
        currency = opt_str(product, "currency") or ""
        lines.append(f"• {name} × {quantity} at {price} {currency}".rstrip())
    return shown(
        f"[order from catalog {opt_id(order, 'catalog_id') or ''}]".replace(" ]", "]"), *lines
    )


def _context_line(item: JSONObject) -> str | None:
    """`[forwarded]` and replies: what the message says about its origin."""
    context = opt_object(item, "context")
    if context is None:
        return None
    if context.get("frequently_forwarded") is True:
        return "[forwarded many times]"
    if context.get("forwarded") is True:
        return "[forwarded]"
    if context.get("id") is not None and item.get("type") not in ("button", "interactive"):
        return "[in reply to an earlier message]"
    return None


def _referral_line(item: JSONObject) -> str | None:
    """Click-to-WhatsApp ads: the ad the customer came from, once, with its message."""
    referral = opt_object(item, "referral")
    if referral is None:
        return None
    words = [opt_str(referral, key) for key in ("headline", "body", "source_url")]
    return f"[came from an ad: {' · '.join(w for w in words if w) or 'no details'}]"
