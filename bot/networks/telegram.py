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
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.config import Settings
from bot.networks.base import (
    Attachment,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    NotSupported,
    OutboundReply,
    OutgoingFile,
    PayloadError,
    SentReceipt,
    SignatureError,
    WebhookError,
)
from bot.networks.http import JsonHttp, status_error

DELETE_WITHIN = timedelta(hours=48)
UPLOAD_LIMIT = 50 * 1024 * 1024
PHOTO_LIMIT = 10 * 1024 * 1024
UPLOAD_TIMEOUT = 600.0
MEDIA = ("photo", "video", "voice", "audio", "document", "animation", "video_note")
OTHER = ("sticker", "location", "contact", "poll", "venue", "dice")


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
        try:
            update = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError("body is not JSON") from exc
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise PayloadError("not a Telegram update: update_id missing")
        message = update.get("message") or update.get("business_message")
        if message is None:
            return []  # edits, channel posts, callbacks...: nothing for the inbox
        return [self._message(message)]

    def _message(self, message: Any) -> InboundMessage:
        """Read the fields we use, each checked for its type: a wrong one is a 400."""
        if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
            raise PayloadError("message.chat must be an object")
        chat = message["chat"]
        sender = message.get("from", chat)
        if not isinstance(sender, dict):
            raise PayloadError("message.from must be an object")
        chat_id = _integer(chat, "id", "message.chat.id")
        message_id = _integer(message, "message_id", "message.message_id")
        try:
            sent_at = datetime.fromtimestamp(_integer(message, "date", "message.date"), UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise PayloadError("message.date is not a valid time") from exc
        first, last, title = (_text(sender, key) for key in ("first_name", "last_name", "title"))
        name = " ".join(part for part in (first, last) if part) or title or str(chat_id)
        attachments = tuple(Attachment(kind=kind) for kind in (*MEDIA, *OTHER) if kind in message)
        text = _text(message, "text") or _text(message, "caption") or ""
        if not text and attachments:
            text = " ".join(f"[{item.kind}]" for item in attachments)
        author = sender.get("id", chat_id)
        return InboundMessage(
            network=self.name,
            conversation_key=str(chat_id),
            message_id=f"{chat_id}:{message_id}",
            author_id=str(author) if isinstance(author, int | str) else str(chat_id),
            author_name=name,
            author_handle=_text(sender, "username"),
            text=text,
            sent_at=sent_at,
            attachments=attachments,
            reply_context={"chat_id": chat_id},
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
        # aiohttp reads the open file in its executor, a chunk at a time
        with open(file.path, "rb") as content:  # noqa: ASYNC230
            form = aiohttp.FormData()
            form.add_field("chat_id", str(reply_context["chat_id"]))
            form.add_field(field, content, filename=file.name, content_type=file.mimetype)
            result = await self._call(method, form, "the file")
        return SentReceipt(str(result["message_id"]) if isinstance(result, dict) else None)

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        payload: dict[str, Any] = {
            "chat_id": reply.reply_context["chat_id"],
            "message_id": int(message_id),
            "text": reply.text,
            "entities": list(reply.entities),
        }
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

    async def _call(
        self, method: str, payload: dict[str, Any] | aiohttp.FormData, what: str
    ) -> Any:
        """A Bot API call's `result`; `DeliveryError` with Telegram's reason otherwise."""
        url = f"{self._api_url}/bot{self._token}/{method}"
        if isinstance(payload, aiohttp.FormData):
            answer = await self._http.post(url, form=payload, timeout=UPLOAD_TIMEOUT)
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


def _integer(data: dict[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(f"{where} must be an integer")
    return value


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{key} must be a string")
    return value
