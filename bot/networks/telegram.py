"""Telegram Bot API: webhook updates in, `sendMessage` out.

The webhook is authenticated by the static secret Telegram echoes in
`X-Telegram-Bot-Api-Secret-Token` (set with `setWebhook(secret_token=...)`).
A conversation is a chat; a message id is unique within its chat, so the
de-duplication key is `<chat id>:<message id>` (re-sent updates repeat both).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.networks.base import (
    Attachment,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    OutboundReply,
    PayloadError,
    SentReceipt,
    SignatureError,
    WebhookError,
)
from bot.networks.http import JsonHttp, status_error
from bot.networks.payload import load_object

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
        update = load_object(body)
        if not isinstance(update.get("update_id"), int):
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
