"""The one Protocol every social network adapter implements.

Adapters turn raw webhook requests into `InboundMessage` / `DeliveryStatus`
values and send replies. They know nothing of Slack or storage, and they
raise instead of logging and returning None.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable


class WebhookError(Exception):
    """A request we refuse; `status` is the HTTP answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureError(WebhookError):
    status = 401


class ForbiddenError(WebhookError):
    """A handshake with the wrong verify token."""

    status = 403


class PayloadError(WebhookError):
    status = 400


class DeliveryError(Exception):
    """Sending to the network failed.

    `temporary` failures (timeouts, 429, 5xx) are retried later; permanent ones
    are shown in the thread. `window_closed` marks the 24-hour messaging window
    of Meta and WhatsApp.
    """

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        retry_after: float | None = None,
        window_closed: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.retry_after = retry_after
        self.window_closed = window_closed


class NotSupported(DeliveryError):
    """The network has no API for this (editing or deleting a sent message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, temporary=False)


@dataclass(frozen=True)
class Attachment:
    """A part of a message that is not its text.

    `url` is a link a person may open (or the network's download URL); `media_id` is
    the network's own handle to download the bytes (Telegram `file_id`, WhatsApp media
    id) when there is no usable URL; `title` is a file name or a short label.
    """

    kind: str  # image, video, audio, voice, file, sticker, gif, location, contact, ...
    url: str | None = None
    title: str | None = None
    media_id: str | None = None
    mimetype: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message in a customer conversation, as the network reported it.

    `conversation_key` identifies the conversation within the network (chat id,
    "page:psid", a top-level comment id...). `message_id` is the network's own id,
    unique within the network: the de-duplication key. `sent_at` is the network's
    timestamp (timezone-aware). `reply_context` holds what `send` needs later.
    `from_team` marks a reply a colleague sent from the network's own inbox
    (e.g. a Messenger echo sent by a person): shown as a team reply, not relayed.
    `in_reply_to` is the network id of the message this one answers (X replies):
    when that message is already in a conversation, this one joins it.
    `customer_id`: on a `from_team` message in a one-to-one conversation, the customer
    it was sent to; such a reply opens the conversation when the bot has not seen it.
    """

    network: str
    conversation_key: str
    message_id: str
    author_id: str
    author_name: str
    text: str
    sent_at: datetime
    author_handle: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_context: Mapping[str, Any] = field(default_factory=dict)
    from_team: bool = False
    in_reply_to: str | None = None
    automated: bool = False  # sent by an automation on the business side: never a human reply
    customer_id: str | None = None


@dataclass(frozen=True)
class DeliveryStatus:
    """A network's report on a message we sent (WhatsApp `statuses[]`)."""

    network: str
    message_id: str
    status: Literal["sent", "delivered", "read", "failed"]
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class CustomerReaction:
    """The customer added or removed a reaction on a message (theirs or ours).

    `target_id` is the network's id of the message reacted to, in the form stored
    (an `InboundMessage.message_id`, or a team reply's external id)."""

    network: str
    conversation_key: str
    event_id: str
    target_id: str
    emoji: str  # the emoji, or the network's name for it ("" when removed and unknown)
    removed: bool
    at: datetime


@dataclass(frozen=True)
class CustomerRemoval:
    """The customer deleted, unsent or revoked one of their messages."""

    network: str
    conversation_key: str
    event_id: str
    target_id: str
    at: datetime


@dataclass(frozen=True)
class CustomerEdit:
    """The customer edited a message; `text` is its new content as shown."""

    network: str
    conversation_key: str
    event_id: str
    target_id: str
    text: str
    attachments: tuple[Attachment, ...]
    at: datetime


@dataclass(frozen=True)
class Notice:
    """A system notice about a conversation (number changed, member joined or left, bot
    blocked, payment...): a short note in its thread if it exists, never a customer
    message."""

    network: str
    conversation_key: str
    event_id: str
    text: str
    at: datetime


@dataclass(frozen=True)
class CustomerRating:
    """The customer answered a rating question (`bot.networks.rating`) with a tap:
    never a customer message. `tap_id` is what the network wants acknowledged
    (Telegram's callback query id), if anything."""

    network: str
    conversation_key: str
    event_id: str
    survey_id: int
    score: int
    at: datetime
    tap_id: str | None = None


@dataclass(frozen=True)
class PublicMention:
    """A public post naming the brand, for listening: never a conversation by itself.

    `source` is where it was said (x, facebook, instagram, generic) and `external_id` its
    id there; `url` where anyone can read it. `tagged`: the post @mentions the account
    itself (Instagram and Page mention webhooks), so it is relevant whatever its words.
    `network`, `conversation_key` and `reply_context` say how a team member who opens it
    answers it publicly (None: it cannot be answered from Slack).
    """

    source: str
    external_id: str
    author_id: str
    author_name: str
    text: str
    sent_at: datetime
    url: str | None = None
    author_handle: str | None = None
    tagged: bool = False
    network: str | None = None
    conversation_key: str | None = None
    reply_context: Mapping[str, Any] = field(default_factory=dict)


CustomerAction = CustomerReaction | CustomerRemoval | CustomerEdit | Notice
InboundEvent = InboundMessage | DeliveryStatus | CustomerAction | CustomerRating | PublicMention


@dataclass(frozen=True)
class OutboundReply:
    """One message of a team reply: the conversation's stored `reply_context` plus text
    already converted for the network (`bot.markup`); `entities` are Telegram's
    formatting ranges for `text`. `answers` is the network id of the customer message
    being answered (Telegram quotes it in groups)."""

    conversation_key: str
    reply_context: Mapping[str, Any]
    text: str
    author_id: str
    author_name: str
    reply_id: int
    sent_at: datetime
    automated: bool = False  # the out-of-hours auto-reply (`reply_id` is its own row's)
    entities: tuple[Mapping[str, Any], ...] = ()
    answers: str | None = None
    files: tuple[Mapping[str, Any], ...] = ()  # links, for networks that take them
    caption: bool = False  # the text went as the caption of a file (edits change that)
    # A rating question: the adapter offers the 1-5 answers in the network's own way
    # (`bot.networks.rating`); `reply_id` is then the survey's row.
    survey_id: int | None = None


@dataclass(frozen=True)
class OutgoingFile:
    """A file from the team, downloaded to `path` (spooled to disk, never held in memory);
    `caption` is the reply's text when it goes with the file (`Network.caption_limit`)."""

    name: str
    mimetype: str
    size: int
    path: str
    caption: OutboundReply | None = None


@dataclass(frozen=True)
class SentReceipt:
    message_id: str | None


class MediaUnavailable(Exception):
    """A file cannot be fetched from the network.

    `temporary`: worth another try later (timeouts, 429, 5xx); otherwise the reason
    is shown in the thread, with `link` when a person can still open the file.
    """

    def __init__(self, reason: str, *, temporary: bool, link: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.link = link


@dataclass
class MediaStream:
    """A file being downloaded from a network: its bytes are read once, in chunks.

    `size` is the length the network announced (None: unknown until read);
    `close()` releases the download whether or not it was read to the end.
    """

    chunks: AsyncIterator[bytes]
    size: int | None
    mimetype: str | None
    filename: str
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Profile:
    """A customer's name and handle from the network's profile API."""

    name: str
    handle: str | None = None


class ProfileUnavailable(Exception):
    """The profile API did not give a name (consent missing, blocked, down)."""


@runtime_checkable
class ProfileSource(Protocol):
    """A network whose webhooks carry only ids, with an API that names the customer."""

    async def profile(self, reply_context: Mapping[str, Any], customer_id: str) -> Profile | None:
        """The customer's profile; None when this conversation has none to look up (a
        comment thread); raise `ProfileUnavailable` when the lookup fails."""


@dataclass(frozen=True)
class HandshakeAnswer:
    status: int
    body: str
    content_type: str = "text/plain"


class Network(Protocol):
    name: str
    # True: files go as signed download links in the reply (`OutboundReply.files`)
    # rather than through `send_file`
    sends_file_links: bool

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise `SignatureError` unless the request is signed by the network."""

    def handshake(self, query: Mapping[str, str]) -> HandshakeAnswer:
        """Answer a GET (subscription handshake, CRC); raise `WebhookError` if refused."""

    def parse(self, body: bytes) -> list[InboundEvent]:
        """Turn a verified body into events; raise `PayloadError` if malformed."""

    def reply_target(self, reply_context: Mapping[str, Any]) -> str:
        """The `bot.markup.TARGETS` name replies in this conversation are prepared for
        (formatting, length limit, public or private)."""

    async def send(self, reply: OutboundReply) -> SentReceipt:
        """Deliver a team reply; raise `DeliveryError`."""

    def public_link(self, reply_context: Mapping[str, Any], message_id: str) -> str | None:
        """Where anyone can see a public reply we sent (a comment, a post); None for a
        private message or when the network's id gives no address."""

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        """The largest file (bytes) of this type `send_file` takes here; 0 when files
        cannot be sent; `NotSupported` (the reason) for a type this conversation cannot take."""

    def caption_limit(self, reply_context: Mapping[str, Any]) -> int:
        """The longest text that goes as a file's caption (a one-message reply with files
        is sent as its first file, captioned); 0: the text goes as a message of its own."""

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        """Send one file with the network's media API; raise `DeliveryError` (`NotSupported`
        when the network refuses this file itself: the rest of the reply still goes)."""

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        """Replace the text of a message we sent; raise `DeliveryError` (`NotSupported`
        where the network cannot)."""

    async def delete(
        self, reply_context: Mapping[str, Any], message_id: str, sent: datetime
    ) -> None:
        """Delete a message we sent at `sent`; raise `DeliveryError` (`NotSupported`)."""

    async def close(self) -> None:
        """Release HTTP sessions."""

    async def open_media(self, attachment: Attachment) -> MediaStream:
        """Start downloading an attachment's bytes; raise `MediaUnavailable`."""


@runtime_checkable
class AnswersTaps(Protocol):
    """A network that wants each button tap acknowledged (Telegram's callback queries:
    the customer's app shows a spinner until then)."""

    async def answer_tap(self, tap_id: str, text: str) -> None:
        """Acknowledge the tap with a short text; raise `DeliveryError`."""


class SentMessagesFixed:
    """Defaults for adapters whose network cannot edit or delete what the bot sent, nor
    take files from Slack, unless they say otherwise."""

    label: str
    sends_file_links = False

    def public_link(self, reply_context: Mapping[str, Any], message_id: str) -> str | None:
        return None

    def file_limit(self, reply_context: Mapping[str, Any], mimetype: str) -> int:
        return 0

    def caption_limit(self, reply_context: Mapping[str, Any]) -> int:
        return 0

    async def send_file(self, reply_context: Mapping[str, Any], file: OutgoingFile) -> SentReceipt:
        raise NotSupported(f"files are not sent to {self.label} from Slack yet")

    async def edit(self, reply: OutboundReply, message_id: str) -> None:
        raise NotSupported(f"{self.label} does not let a sent message be edited")

    async def delete(
        self, reply_context: Mapping[str, Any], message_id: str, sent: datetime
    ) -> None:
        raise NotSupported(f"{self.label} does not let a sent message be deleted")


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_hex_signature(secret: str, body: bytes, header: str | None) -> None:
    """Check a `sha256=<hex>` header (Meta, WhatsApp, our generic webhook)."""
    if not header:
        raise SignatureError("missing signature")
    expected = "sha256=" + hmac_sha256_hex(secret, body)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise SignatureError("bad signature")
