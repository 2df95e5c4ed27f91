"""A stored team reply as the network's messages: the one place delivery and corrections
(edits) convert a Slack message for a conversation's network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.markup import TARGETS, InternalNote, OverLimit, PreparedReply, ResolveUser, prepare_reply
from bot.markup.telegram import TelegramText, telegram_text
from bot.networks.base import Network, OutboundReply
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
    prepared: PreparedReply, conversation: Conversation, reply: TeamReply, author_name: str
) -> list[OutboundReply]:
    """One `OutboundReply` per prepared text; Telegram's HTML becomes text + entities."""
    assert reply.id is not None
    messages = []
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
            )
        )
    return messages
