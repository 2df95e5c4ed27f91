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
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
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
    SignatureError,
    WebhookError,
)
from bot.networks.http import JsonHttp, status_error
from bot.networks.media import download

MEDIA = ("photo", "video", "voice", "audio", "document", "animation", "video_note")
OTHER = ("sticker", "location", "contact", "poll", "venue", "dice")


class TelegramNetwork:
    name = "telegram"

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
        attachments = tuple(
            _attachment(kind, message[kind]) for kind in (*MEDIA, *OTHER) if kind in message
        )
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

    async def send(self, reply: OutboundReply) -> SentReceipt:
        url = f"{self._api_url}/bot{self._token}/sendMessage"
        payload = {"chat_id": reply.reply_context["chat_id"], "text": reply.text}
        answer = await self._http.post(url, payload)
        body = answer.data or {}
        if answer.status == 200 and body.get("ok"):
            return SentReceipt(str(body["result"]["message_id"]))
        description = body.get("description") or f"HTTP {answer.status}"
        error = status_error(answer, f"Telegram refused the message: {description}")
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


def _attachment(kind: str, value: Any) -> Attachment:
    """A media part with its file id, name, type and size (a photo: its largest size)."""
    if kind == "photo" and isinstance(value, list) and value:
        value = value[-1]
    if not isinstance(value, dict) or not isinstance(value.get("file_id"), str):
        return Attachment(kind=kind)
    size = value.get("file_size")
    return Attachment(
        kind=kind,
        media_id=value["file_id"],
        title=value.get("file_name") if isinstance(value.get("file_name"), str) else None,
        mimetype=value.get("mime_type") if isinstance(value.get("mime_type"), str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


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
