"""A stored team reply as the network's messages: the one place delivery and corrections
(edits) convert a Slack message for a conversation's network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot.markup import TARGETS, InternalNote, OverLimit, PreparedReply, ResolveUser, prepare_reply
from bot.markup.telegram import TelegramText, telegram_text
from bot.networks.base import Network, NotSupported, OutboundReply
from storage.models import Conversation, TeamReply


async def prepare_for(
    network: Network,
    conversation: Conversation,
    message: Mapping[str, Any],
    names: ResolveUser,
) -> PreparedReply | OverLimit | InternalNote:
    """Convert a Slack message for the conversation's network (formatting, limit)."""
    target = TARGETS.get(network.reply_target(conversation.reply_context), TARGETS["generic"])
    return await prepare_reply(message, target, names)


def outbound_messages(
    prepared: PreparedReply,
    conversation: Conversation,
    reply: TeamReply,
    author_name: str,
    answers: str | None = None,
) -> list[OutboundReply]:
    """One `OutboundReply` per prepared text; Telegram's HTML becomes text + entities.
    The first answers the customer message `answers` (a network id)."""
    assert reply.id is not None
    messages: list[OutboundReply] = []
    for text in prepared.texts:
        shown = telegram_text(text) if prepared.parse_mode == "HTML" else TelegramText(text)
        messages.append(
            OutboundReply(
                conversation_key=conversation.external_key,
                reply_context=conversation.reply_context,
                text=shown.text,
                entities=shown.entities,
                author_id=reply.user_id,
                author_name=author_name,
                reply_id=reply.id,
                sent_at=reply.sent_at,
                answers=answers if not messages else None,
            )
        )
    return messages


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file of a Slack message (`files[]`); `url` is its `url_private_download`."""

    name: str
    mimetype: str
    size: int
    url: str | None


def shared_files(message: Mapping[str, Any]) -> list[SharedFile]:
    """The files of a stored Slack message, in order (a tombstoned file has no URL)."""
    files = message.get("files")
    found = []
    for item in files if isinstance(files, list) else ():
        if not isinstance(item, dict):
            continue
        size = item.get("size")
        url = item.get("url_private_download") or item.get("url_private")
        found.append(
            SharedFile(
                name=str(item.get("name") or item.get("title") or "file"),
                mimetype=str(item.get("mimetype") or "application/octet-stream"),
                size=size if isinstance(size, int) and size >= 0 else 0,
                url=url if isinstance(url, str) else None,
            )
        )
    return found


def with_caption(
    network: Network,
    context: Mapping[str, Any],
    messages: Sequence[OutboundReply],
    files: Sequence[SharedFile],
) -> OutboundReply | None:
    """The reply's one message, to go as the caption of its first file, when the network
    takes captions, the text fits one, and that file is not refused for its type or size;
    None: the text goes as a message of its own. Delivery and edits decide alike."""
    limit = network.caption_limit(context)
    if not (limit and len(messages) == 1 and files and files[0].url and messages[0].text):
        return None
    if len(messages[0].text.encode("utf-16-le")) // 2 > limit:
        return None
    try:
        file_limit = network.file_limit(context, files[0].mimetype)
    except NotSupported:
        return None
    if file_limit == 0 or files[0].size > file_limit:
        return None
    return replace(messages[0], caption=True)


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"
