"""Telegram Bot API: webhook updates in, `sendMessage` out.

The webhook is authenticated by the static secret Telegram echoes in
`X-Telegram-Bot-Api-Secret-Token` (set with `setWebhook(secret_token=...)`).
A conversation is a chat; a message id is unique within its chat, so the
de-duplication key is `<chat id>:<message id>` (re-sent updates repeat both).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.config import Settings
from bot.networks import rating
from bot.networks.base import (
    Attachment,
    CustomerEdit,
    CustomerRating,
    DeliveryError,
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
    SentReceipt,
    SignatureError,
    WebhookError,
)
from bot.networks.http import (
    UPLOAD_TIMEOUT_SECONDS,
    JsonHttp,
    JSONObject,
    file_form,
    status_error,
)
from bot.networks.media import download
from bot.networks.payload import (
    contact_line,
    load_object,
    location_line,
    media_line,
    shown,
    unknown_part,
)
from bot.networks.rating import SCORES

DELETE_WITHIN = timedelta(hours=48)
UPLOAD_LIMIT = 50 * 1024 * 1024
PHOTO_LIMIT = 10 * 1024 * 1024
CAPTION_LIMIT = 1024  # "Photo caption ..., 0-1024 characters after entities parsing"


class TelegramNetwork:
    name = "telegram"
    sends_file_links = False

    def __init__(self, *, token: str, secret: str, api_url: str) -> None:
        self._token = token
        self._secret = secret
        self._api_url = api_url.rstrip("/")
        self._http = JsonHttp("Telegram")

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramNetwork:
        assert settings.telegram_bot_token and settings.telegram_webhook_secret
        return cls(
            token=settings.telegram_bot_token,
            secret=settings.telegram_webhook_secret,
            api_url=settings.telegram_api_url,
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = headers.get("X-Telegram-Bot-Api-Secret-Token")
        if not given:
            raise SignatureError("missing X-Telegram-Bot-Api-Secret-Token")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            raise SignatureError("wrong X-Telegram-Bot-Api-Secret-Token")

    def handshake(self, query: Mapping[str, str]) -> HandshakeAnswer:
        raise WebhookError("Telegram webhooks are POST only")

    def parse(self, body: bytes) -> list[InboundEvent]:
        update = load_object(body)
        if not isinstance(update.get("update_id"), int):
            raise PayloadError("not a Telegram update: update_id missing")
        for key in ("message", "business_message"):
            if key in update:
                return [self._message(_object(update[key], key))]
        for key in ("edited_message", "edited_business_message"):
            if key in update:
                return [self._edit(_object(update[key], key))]
        if "my_chat_member" in update:
            return _member_notice(update["update_id"], _object(update["my_chat_member"], "x"))
        if "callback_query" in update:
            return _rating(_object(update["callback_query"], "callback_query"))
        return []  # channel posts, other callbacks, inline queries...: nothing for the inbox

    def _message(self, message: JSONObject) -> InboundMessage | Notice:
        """A customer's message, or a `Notice` for a service message (member joined...)."""
        head = _Head.read(message)
        service = next((key for key in SERVICE if key in message), None)
        if service is not None:
            return Notice(
                network=self.name,
                conversation_key=str(head.chat_id),
                event_id=head.message_key,
                text=_service_text(service, message, head.name),
                at=head.sent_at,
            )
        text, attachments = _content(message)
        context: dict[str, Any] = {"chat_id": head.chat_id}
        if head.group_title is not None:
            context["title"] = head.group_title
        connection = _text(message, "business_connection_id")
        if connection:
            context["business_connection_id"] = connection
        return InboundMessage(
            network=self.name,
            conversation_key=str(head.chat_id),
            message_id=head.message_key,
            author_id=head.author_id,
            author_name=head.name,
            author_handle=head.handle,
            text=shown(_forwarded(message), _replied(message), text),
            sent_at=head.sent_at,
            attachments=tuple(attachments),
            reply_context=context,
        )

    def _edit(self, message: JSONObject) -> CustomerEdit:
        """An edited text or caption: the new content, for the message already relayed."""
        head = _Head.read(message)
        edited = message.get("edit_date")
        at = _time(message, "edit_date") if isinstance(edited, int) else head.sent_at
        text, attachments = _content(message)
        return CustomerEdit(
            network=self.name,
            conversation_key=str(head.chat_id),
            event_id=f"{head.message_key}:edit:{int(at.timestamp())}",
            target_id=head.message_key,
            text=text,
            attachments=tuple(attachments),
            at=at,
        )

    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        return "telegram"

    async def send(self, reply: OutboundReply) -> SentReceipt:
        """Plain `text` with `entities`, never `parse_mode` (see `bot.markup.telegram`)."""
        payload: dict[str, Any] = {"chat_id": reply.reply_context["chat_id"], "text": reply.text}
        if reply.entities:
            payload["entities"] = list(reply.entities)
        quoted = _group_quote(reply)
        if quoted is not None:
            payload["reply_parameters"] = quoted
        if reply.survey_id is not None:
            payload["reply_markup"] = _rating_keyboard(reply.survey_id)
        result = await self._call("sendMessage", payload, "the message")
        return SentReceipt(str(result["message_id"]) if isinstance(result, dict) else None)

    def public_link(self, reply_context: Mapping[str, Any], message_id: str) -> str | None:
        return None  # chats are private to their members

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        """The Bot API takes uploads of up to 50 MB (a photo up to 10 MB: a bigger
        image goes as a document)."""
        return UPLOAD_LIMIT

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        """sendPhoto / sendVideo / sendAudio / sendDocument as multipart, streamed from disk."""
        method, field = _media_method(file)
        fields = {"chat_id": str(reply_context["chat_id"])}
        if file.caption is not None:
            fields["caption"] = file.caption.text
            if file.caption.entities:
                fields["caption_entities"] = json.dumps(list(file.caption.entities))
            quoted = _group_quote(file.caption)
            if quoted is not None:
                fields["reply_parameters"] = json.dumps(quoted)
        with file_form(fields, field, file) as form:
            result = await self._call(method, form, "the file")
        return SentReceipt(str(result["message_id"]) if isinstance(result, dict) else None)

    def caption_limit(self, reply_context: Mapping[str, Any]) -> int:
        return CAPTION_LIMIT

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        """editMessageText, or editMessageCaption for a file sent with the text as caption."""
        payload: dict[str, Any] = {
            "chat_id": reply.reply_context["chat_id"],
            "message_id": int(message_id),
        }
        if reply.caption:
            payload |= {"caption": reply.text, "caption_entities": list(reply.entities)}
            await self._call("editMessageCaption", payload, "the edit")
        else:
            payload |= {"text": reply.text, "entities": list(reply.entities)}
            await self._call("editMessageText", payload, "the edit")

    async def delete(
        self, reply_context: Mapping[str, Any], message_id: str, sent: datetime
    ) -> None:
        """deleteMessage: a bot may delete its own messages for 48 hours."""
        if datetime.now(UTC) - sent > DELETE_WITHIN:
            raise NotSupported("Telegram lets a bot delete its messages for 48 hours only")
        payload: dict[str, Any] = {
            "chat_id": reply_context["chat_id"],
            "message_id": int(message_id),
        }
        await self._call("deleteMessage", payload, "the deletion")

    async def answer_tap(self, tap_id: str, text: str) -> None:
        """answerCallbackQuery: stops the spinner on the customer's button."""
        await self._call(
            "answerCallbackQuery", {"callback_query_id": tap_id, "text": text}, "the tap"
        )

    async def _call(
        self, method: str, payload: dict[str, Any] | aiohttp.FormData, what: str
    ) -> Any:
        """A Bot API call's `result`; `DeliveryError` with Telegram's reason otherwise."""
        url = f"{self._api_url}/bot{self._token}/{method}"
        if isinstance(payload, aiohttp.FormData):
            answer = await self._http.post(url, form=payload, timeout=UPLOAD_TIMEOUT_SECONDS)
        else:
            answer = await self._http.post(url, payload)
        body = answer.data or {}
        if answer.status == 200 and body.get("ok"):
            return body.get("result")
        description = body.get("description") or f"HTTP {answer.status}"
        error = status_error(answer, f"Telegram refused {what}: {description}")
        # Telegram gives the wait in the body, not in a Retry-After header.
        error.retry_after = (body.get("parameters") or {}).get("retry_after") or error.retry_after
        raise error

    async def close(self) -> None:
        await self._http.close()

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """`getFile`, then the file from `/file/bot<token>/<path>` (bots get at most 20 MB)."""
        if not attachment.media_id:
            raise MediaUnavailable("Telegram gave no file id for it", temporary=False)
        try:
            answer = await self._http.post(
                f"{self._api_url}/bot{self._token}/getFile", {"file_id": attachment.media_id}
            )
        except DeliveryError as exc:
            raise MediaUnavailable(exc.message, temporary=True) from None
        body = answer.data or {}
        path = (body.get("result") or {}).get("file_path") if body.get("ok") else None
        if not isinstance(path, str) or not path:
            description = str(body.get("description") or f"HTTP {answer.status}")
            if "too big" in description:
                description = "Telegram lets bots download files of up to 20 MB only"
            temporary = answer.status == 429 or answer.status >= 500
            raise MediaUnavailable(description, temporary=temporary)
        # The file URL carries the bot token: never shown as a link.
        return await download(
            "Telegram", f"{self._api_url}/file/bot{self._token}/{path}", attachment
        )


def _group_quote(reply: OutboundReply) -> dict[str, Any] | None:
    """In a group (Telegram's group and supergroup ids are negative) a reply quotes the
    message it answers, so the group sees whom it is for; never fails the send."""
    chat_id, answers = reply.reply_context.get("chat_id"), reply.answers
    if not (isinstance(chat_id, int) and chat_id < 0 and answers):
        return None
    chat, _, message_id = answers.rpartition(":")
    if chat != str(chat_id) or not message_id.isdigit():
        return None
    return {"message_id": int(message_id), "allow_sending_without_reply": True}


def _rating_keyboard(survey_id: int) -> dict[str, Any]:
    """One row of five inline buttons whose `callback_data` names the survey and score."""
    buttons = [{"text": str(n), "callback_data": rating.payload(survey_id, n)} for n in SCORES]
    return {"inline_keyboard": [buttons]}


def _rating(query: JSONObject) -> list[InboundEvent]:
    """A tap on a rating button (on a message the bot sent into a chat); other callbacks
    are nothing for the inbox."""
    answer = rating.read_payload(query.get("data"))
    message = _opt_object(query, "message")
    chat = _opt_object(message, "chat") if message is not None else None
    chat_id = chat.get("id") if chat is not None else None
    tap_id = query.get("id")
    if answer is None or not isinstance(chat_id, int) or not isinstance(tap_id, str):
        return []
    survey_id, score = answer
    return [
        CustomerRating(
            network="telegram",
            conversation_key=str(chat_id),
            event_id=f"callback:{tap_id}",
            survey_id=survey_id,
            score=score,
            at=datetime.now(UTC),  # a callback query carries no time of its own
            tap_id=tap_id,
        )
    ]


def _media_method(file: OutgoingFile) -> tuple[str, str]:
    """The Bot API method and its file field for a file's type."""
    kind = file.mimetype.partition("/")[0]
    if kind == "image" and file.mimetype != "image/gif" and file.size <= PHOTO_LIMIT:
        return "sendPhoto", "photo"
    if file.mimetype in ("video/mp4", "video/quicktime"):
        return "sendVideo", "video"
    if file.mimetype in ("audio/mpeg", "audio/mp4", "audio/m4a", "audio/x-m4a"):
        return "sendAudio", "audio"
    return "sendDocument", "document"


# Message fields that say who, where and when, not what: never a part of the content.
META_KEYS = frozenset(
    {
        "message_id", "message_thread_id", "from", "sender_chat", "sender_boost_count",
        "sender_business_bot", "date", "business_connection_id", "chat", "forward_origin",
        "forward_from", "forward_from_chat", "forward_from_message_id", "forward_signature",
        "forward_sender_name", "forward_date", "is_topic_message", "is_automatic_forward",
        "reply_to_message", "external_reply", "quote", "reply_to_story", "via_bot",
        "edit_date", "has_protected_content", "is_from_offline", "media_group_id",
        "author_signature", "text", "entities", "link_preview_options", "effect_id",
        "caption", "caption_entities", "show_caption_above_media", "has_media_spoiler",
        "reply_markup", "new_chat_participant", "new_chat_member", "paid_star_count",
    }
)  # fmt: skip
# Service messages (https://core.telegram.org/bots/api#message): a note, never a message.
SERVICE = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo",
    "delete_chat_photo", "group_chat_created", "supergroup_chat_created",
    "channel_chat_created", "message_auto_delete_timer_changed", "migrate_to_chat_id",
    "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "connected_website", "write_access_allowed",
    "proximity_alert_triggered", "boost_added", "chat_background_set",
    "forum_topic_created", "forum_topic_edited", "forum_topic_closed",
    "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden",
    "giveaway_created", "giveaway_completed", "video_chat_scheduled", "video_chat_started",
    "video_chat_ended", "video_chat_participants_invited", "passport_data",
)  # fmt: skip
# file kind in the message -> our attachment kind; `animation` comes with a `document` too.
FILES = {
    "animation": "gif",
    "video": "video",
    "video_note": "video_note",
    "voice": "voice",
    "audio": "audio",
    "document": "file",
    "sticker": "sticker",
}
# Currencies without minor units (Telegram's `total_amount` is in the smallest unit).
WHOLE_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "PYG", "XTR"})


@dataclass(frozen=True)
class _Head:
    """Who wrote a message, where and when."""

    chat_id: int
    message_key: str
    author_id: str
    name: str
    handle: str | None
    sent_at: datetime
    group_title: str | None

    @classmethod
    def read(cls, message: JSONObject) -> _Head:
        chat = _object(message.get("chat"), "message.chat")
        sender = _object(message.get("from", chat), "message.from")
        chat_id = _integer(chat, "id", "message.chat.id")
        message_id = _integer(message, "message_id", "message.message_id")
        author = sender.get("id", chat_id)
        group = chat.get("type") in ("group", "supergroup")
        return cls(
            chat_id=chat_id,
            message_key=f"{chat_id}:{message_id}",
            author_id=str(author) if isinstance(author, int | str) else str(chat_id),
            name=_name(sender) or str(chat_id),
            handle=_text(sender, "username"),
            sent_at=_time(message, "date"),
            group_title=(_text(chat, "title") or str(chat_id)) if group else None,
        )


def _content(message: JSONObject) -> tuple[str, list[Attachment]]:
    """The text or caption, then a line per other part; the files to download."""
    files = [_file(message, key) for key in FILES if key in message]
    if "animation" in message:
        files = [f for f in files if f.kind != "file"]
    if "photo" in message:
        files.insert(0, _photo(message["photo"]))
    lines = [media_line(item) for item in files]
    lines.extend(_other_parts(message))
    text = _text(message, "text") or _text(message, "caption") or ""
    if not text.strip() and not lines:
        unknown = sorted(set(message) - META_KEYS)
        lines.append(unknown_part("telegram", unknown[0] if unknown else "empty message"))
    return shown(text, *lines), files


def _other_parts(message: JSONObject) -> list[str]:
    lines = []
    venue = _opt_object(message, "venue")
    location = _opt_object(venue or message, "location")
    if location is not None:
        names = (_text(venue, "title"), _text(venue, "address")) if venue else ()
        lines.append(location_line(location.get("latitude"), location.get("longitude"), *names))
    contact = _opt_object(message, "contact")
    if contact is not None:
        phone = _text(contact, "phone_number")
        lines.append(contact_line(_name(contact), [phone] if phone else []))
    poll = _opt_object(message, "poll")
    if poll is not None:
        options = [o.get("text") for o in _list(poll, "options") if isinstance(o, dict)]
        words = [_text(poll, "question") or "", *(o for o in options if isinstance(o, str))]
        lines.append(f"[poll: {' · '.join(w for w in words if w)}]")
    dice = _opt_object(message, "dice")
    if dice is not None:
        lines.append(f"[dice {_text(dice, 'emoji') or ''}: {dice.get('value')}]")
    game = _opt_object(message, "game")
    if game is not None:
        lines.append(f"[game: {_text(game, 'title') or 'untitled'}]")
    if "story" in message:
        lines.append("[shared a story]")
    invoice = _opt_object(message, "invoice")
    if invoice is not None:
        lines.append(f"[invoice: {_text(invoice, 'title') or ''}]")
    return lines


def _photo(value: Any) -> Attachment:
    """The largest size of a photo (Telegram lists the sizes smallest first)."""
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        raise PayloadError("message.photo must be a list of sizes")
    largest = value[-1]
    return Attachment(
        "image", media_id=_text(largest, "file_id"), size=_size(largest), mimetype="image/jpeg"
    )


def _file(message: JSONObject, key: str) -> Attachment:
    item = _object(message.get(key), f"message.{key}")
    if key == "sticker":
        title = _text(item, "emoji")
    elif key == "audio":
        words = (_text(item, "performer"), _text(item, "title"))
        title = " – ".join(w for w in words if w) or _text(item, "file_name")
    else:
        title = _text(item, "file_name")
    return Attachment(
        FILES[key],
        title=title,
        media_id=_text(item, "file_id"),
        mimetype=_text(item, "mime_type"),
        size=_size(item),
    )


def _forwarded(message: JSONObject) -> str | None:
    """`[forwarded from ...]` from `forward_origin` (Bot API 7) or the older fields."""
    origin = _opt_object(message, "forward_origin")
    if origin is not None:
        who = (
            _opt_object(origin, "sender_user")
            or _opt_object(origin, "sender_chat")
            or _opt_object(origin, "chat")
        )
        name = _name(who) if who else _text(origin, "sender_user_name")
        return f"[forwarded from {name or 'someone'}]"
    who = _opt_object(message, "forward_from") or _opt_object(message, "forward_from_chat")
    name = _name(who) if who else _text(message, "forward_sender_name")
    if who is None and name is None and "forward_date" not in message:
        return None
    return f"[forwarded from {name or 'someone'}]"


def _replied(message: JSONObject) -> str | None:
    """`[in reply to: ...]` with the start of the message answered."""
    replied = _opt_object(message, "reply_to_message")
    if replied is None:
        return None
    words = _text(replied, "text") or _text(replied, "caption") or "an earlier message"
    return f"[in reply to: {words[:80]}{'…' if len(words) > 80 else ''}]"


def _service_text(key: str, message: JSONObject, who: str) -> str:
    if key == "new_chat_members":
        names = [_name(m) or "someone" for m in _list(message, key) if isinstance(m, dict)]
        return f"{who} added {', '.join(names) or 'members'} to the group"
    if key == "left_chat_member":
        return f"{_name(_object(message.get(key), key)) or 'A member'} left the group"
    if key == "successful_payment":
        payment = _object(message.get(key), key)
        currency = _text(payment, "currency") or ""
        amount = payment.get("total_amount")
        if isinstance(amount, int) and not isinstance(amount, bool):
            value = str(amount) if currency in WHOLE_CURRENCIES else f"{amount / 100:.2f}"
            return f"Payment received: {value} {currency}"
        return "Payment received"
    return f"Telegram service message: {key.replace('_', ' ')}"


def _member_notice(update_id: int, change: JSONObject) -> list[InboundEvent]:
    """`my_chat_member`: the customer blocked or unblocked the bot, or a group added it."""
    chat = _object(change.get("chat"), "my_chat_member.chat")
    chat_id = _integer(chat, "id", "my_chat_member.chat.id")
    new = _object(change.get("new_chat_member"), "new_chat_member")
    status = _text(new, "status") or "unknown"
    private = chat.get("type") == "private"
    if private:
        text = (
            "The customer blocked the bot: replies will not reach them."
            if status == "kicked"
            else "The customer unblocked the bot."
        )
    else:
        title = _text(chat, "title") or str(chat_id)
        text = f"The bot's membership in the group {title} is now: {status}"
    return [
        Notice(
            network="telegram",
            conversation_key=str(chat_id),
            event_id=f"{chat_id}:update:{update_id}",
            text=text,
            at=_time(change, "date"),
        )
    ]


def _name(person: JSONObject) -> str | None:
    words = (_text(person, "first_name"), _text(person, "last_name"))
    return " ".join(w for w in words if w) or _text(person, "title")


def _time(data: JSONObject, key: str) -> datetime:
    try:
        return datetime.fromtimestamp(_integer(data, key, f"message.{key}"), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise PayloadError(f"message.{key} is not a valid time") from exc


def _size(item: JSONObject) -> int | None:
    size = item.get("file_size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _object(value: Any, where: str) -> JSONObject:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _opt_object(data: JSONObject, key: str) -> JSONObject | None:
    value = data.get(key)
    return None if value is None else _object(value, key)


def _list(data: JSONObject, key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise PayloadError(f"{key} must be a list")
    return value


def _integer(data: JSONObject, key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{where} must be an integer")
    return value


def _text(data: JSONObject, key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{key} must be a string")
    return value
