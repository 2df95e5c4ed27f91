"""The signed generic JSON webhook, for any system that can POST JSON.

Inbound and outbound bodies are signed alike: `X-Relaydesk-Signature:
sha256=<hex HMAC-SHA256(secret, raw body)>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from bot.config import Settings
from bot.networks import rating
from bot.networks.base import (
    Attachment,
    CustomerRating,
    HandshakeAnswer,
    InboundEvent,
    InboundMessage,
    MediaStream,
    MediaUnavailable,
    OutboundReply,
    PayloadError,
    PublicMention,
    SentMessagesFixed,
    SentReceipt,
    WebhookError,
    check_hex_signature,
    hmac_sha256_hex,
)
from bot.networks.http import JsonHttp, status_error
from bot.networks.media import download
from bot.networks.payload import load_object

SIGNATURE_HEADER = "X-Relaydesk-Signature"


class GenericNetwork(SentMessagesFixed):
    label = "The generic webhook"
    sends_file_links = True
    name = "generic"

    def __init__(self, *, secret: str, reply_url: str) -> None:
        self._secret = secret
        self._reply_url = reply_url
        self._http = JsonHttp("The reply URL")

    @classmethod
    def from_settings(cls, settings: Settings) -> GenericNetwork:
        assert settings.generic_webhook_secret and settings.generic_reply_url
        return cls(secret=settings.generic_webhook_secret, reply_url=settings.generic_reply_url)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        check_hex_signature(self._secret, body, headers.get(SIGNATURE_HEADER))

    def handshake(self, query: Mapping[str, str]) -> HandshakeAnswer:
        raise WebhookError("the generic webhook is POST only")

    def parse(self, body: bytes) -> list[InboundEvent]:
        data = load_object(body)
        kind = data.get("kind", "message")
        if kind == "mention":
            return [_mention(data)]
        if kind != "message":
            raise PayloadError("kind must be 'message' (the default) or 'mention'")
        inbound = _read(data)
        answer = rating.read_payload(cast(dict[str, Any], inbound).get("csat_payload"))
        if answer is not None:  # the customer chose one of a reply's `csat.options`
            return [
                CustomerRating(
                    network=self.name,
                    conversation_key=inbound["conversation_id"],
                    event_id=inbound["message_id"],
                    survey_id=answer[0],
                    score=answer[1],
                    at=_parse_time(inbound["sent_at"]),
                )
            ]
        return [
            InboundMessage(
                network=self.name,
                conversation_key=inbound["conversation_id"],
                message_id=inbound["message_id"],
                author_id=inbound["author"]["id"],
                author_name=inbound["author"]["name"],
                text=inbound["text"],
                sent_at=_parse_time(inbound["sent_at"]),
                reply_context={"conversation_id": inbound["conversation_id"]},
            )
        ]

    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        return "generic"

    async def send(self, reply: OutboundReply) -> SentReceipt:
        kind = "csat-" if reply.survey_id is not None else "auto-" if reply.automated else ""
        message_id = f"relaydesk-{kind}{reply.reply_id}"
        payload: dict[str, Any] = {
            "conversation_id": reply.reply_context["conversation_id"],
            "message_id": message_id,
            "text": reply.text,
            "author": {"id": reply.author_id, "name": reply.author_name},
            "sent_at": reply.sent_at.isoformat(),
        }
        if reply.files:
            payload["files"] = list(reply.files)
        if reply.survey_id is not None:
            payload["csat"] = _rating_options(reply.survey_id)
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: "sha256=" + hmac_sha256_hex(self._secret, body),
        }
        answer = await self._http.post(self._reply_url, headers=headers, data=body)
        if 200 <= answer.status < 300:
            return SentReceipt(message_id)
        raise status_error(answer, f"the reply URL answered HTTP {answer.status}")

    async def close(self) -> None:
        await self._http.close()

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """The sender's own attachment URL, fetched as is."""
        if not attachment.url:
            raise MediaUnavailable("no URL was given for it", temporary=False)
        return await download("The sender", attachment.url, attachment, link=attachment.url)


def _rating_options(survey_id: int) -> dict[str, Any]:
    """The rating question's answers: the reply URL's system shows them, and posts the
    chosen `payload` back as `csat_payload` in a message of the conversation."""
    return {
        "survey_id": str(survey_id),
        "options": [
            {"score": n, "label": rating.LABELS[n], "payload": rating.payload(survey_id, n)}
            for n in rating.SCORES
        ],
    }


class GenericAuthor(TypedDict):
    id: str
    name: str


class GenericInbound(TypedDict):
    """The generic inbound body (README, Networks): every field a non-empty string."""

    conversation_id: str
    message_id: str
    author: GenericAuthor
    text: str
    sent_at: str


def _mention(data: dict[str, Any]) -> PublicMention:
    """`"kind": "mention"`: a public post naming the brand, for listening. `url` is where
    it can be read; `conversation_id` (default: `message_id`) is what a reply names."""
    fields = _strings(data, ("message_id", "text", "sent_at", "url"))
    url = fields["url"]
    if not url.startswith(("https://", "http://")):
        raise PayloadError("url must be an http(s) address")
    conversation = data.get("conversation_id")
    conversation_id = (
        conversation if isinstance(conversation, str) and conversation else fields["message_id"]
    )
    return PublicMention(
        source="generic",
        external_id=fields["message_id"],
        author_id=fields["author.id"],
        author_name=fields["author.name"],
        text=fields["text"],
        sent_at=_parse_time(fields["sent_at"]),
        url=url,
        network=GenericNetwork.name,
        conversation_key=conversation_id,
        reply_context={"conversation_id": conversation_id},
    )


def _strings(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """`names` and the author's id and name, each a non-empty string, or `PayloadError`."""
    author = data.get("author")
    if not isinstance(author, dict):
        raise PayloadError("author must be an object with id and name")
    fields = {name: data.get(name) for name in names}
    fields["author.id"], fields["author.name"] = author.get("id"), author.get("name")
    missing = [name for name, value in fields.items() if not (isinstance(value, str) and value)]
    if missing:
        raise PayloadError(f"missing or non-string fields: {', '.join(missing)}")
    return cast(dict[str, str], fields)


def _read(data: dict[str, Any]) -> GenericInbound:
    """The body as a `GenericInbound`, or `PayloadError` naming what is wrong."""
    _strings(data, ("conversation_id", "message_id", "text", "sent_at"))
    return cast(GenericInbound, data)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PayloadError("sent_at must be an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        raise PayloadError("sent_at must include a UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise PayloadError("sent_at is out of range") from exc
