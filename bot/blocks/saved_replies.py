"""Saved replies in Slack: the modal that picks one, its search results, the post made
on someone's behalf, and the `/replies list` answer. Pure builders."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from bot.blocks.conversation import SECTION_LIMIT, Block, actions, button, context, escape, units
from storage.models import Conversation, SavedReply

MODAL = "relaydesk.saved_reply_modal"
PICK = "relaydesk.saved_reply_pick"  # the external select; its options come from us
CANCEL = "relaydesk.saved_reply_cancel"  # on the sender's note while UNDO_SECONDS runs
FIELD = "saved"  # the input block (errors are shown on it)
OPTION_LIMIT = 75  # Slack's limit on an option's text
LIST_PREVIEW = 120


def label(name: str, network: str) -> str:
    """How a saved reply is named in answers: `greeting`, or `greeting` (telegram)."""
    return f"saved reply `{name}`" + (f" ({network})" if network else "")


def picker(conversation: Conversation, channel: str, thread_ts: str) -> dict[str, Any]:
    """The modal: a searchable menu (options loaded as the person types) and how the
    placeholders will be filled in. Where to post rides along as metadata."""
    metadata = {"conversation": conversation.id, "channel": channel, "thread_ts": thread_ts}
    explained = (
        f"Sent to *{escape(conversation.customer_name)}* as your reply, shown in the thread "
        f"under your name. {{customer_name}}, {{agent_name}} and {{conversation}} become "
        f"the customer's name, yours and #{conversation.id}."
    )
    return {
        "type": "modal",
        "callback_id": MODAL,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": f"Saved reply #{conversation.id}"[:24]},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": FIELD,
                "label": {"type": "plain_text", "text": "Saved reply"},
                "hint": {"type": "plain_text", "text": "Type to search names and texts."},
                "element": {
                    "type": "external_select",
                    "action_id": PICK,
                    "min_query_length": 0,
                    "placeholder": {"type": "plain_text", "text": "Search saved replies"},
                },
            },
            context([explained]),
        ],
    }


def option_label(saved: SavedReply) -> str:
    """Name and the start of the text, within Slack's 75 characters."""
    text = " ".join(html.unescape(saved.text).split())
    shown = f"{saved.name}: {text}"
    return shown if len(shown) <= OPTION_LIMIT else shown[: OPTION_LIMIT - 1] + "…"


def options(found: Sequence[SavedReply]) -> list[Block]:
    """The answer to a search (`block_suggestion`): the value is the saved reply's id."""
    return [
        {"text": {"type": "plain_text", "text": option_label(s)}, "value": str(s.id)} for s in found
    ]


def posted(text: str, name: str, user: str) -> list[Block] | None:
    """The thread post of a saved reply (its text is what the customer gets); None when
    the text is too long for a section (the post is then its text alone)."""
    if units(text) > SECTION_LIMIT:
        return None
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        context([f":bookmark: Saved reply `{escape(name)}` sent by <@{user}>"]),
    ]


def held(sentence: str, reply_id: int) -> list[Block]:
    """The sender's note while the saved reply waits UNDO_SECONDS, with Cancel."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": sentence}},
        actions(CANCEL, [button("Cancel", CANCEL, str(reply_id), style="danger")]),
    ]


def listing(saved: Sequence[SavedReply], network: str = "") -> str:
    """`/replies list [network]`: every saved reply (of one network's variants and the
    texts for all networks), with the start of its text."""
    shown = [s for s in saved if not network or s.network in (network, "")]
    if not shown:
        return (
            "No saved replies yet. Add one: `/replies add greeting Hello {customer_name}!`"
            if not network
            else f"No saved replies for {network}."
        )
    lines = []
    for s in shown:
        text = " ".join(s.text.split())
        if len(text) > LIST_PREVIEW:
            text = text[: LIST_PREVIEW - 1] + "…"
        where = f" _({s.network})_" if s.network else ""
        lines.append(f"• `{s.name}`{where}: {text}")
    return f"*Saved replies* ({len(shown)})\n" + "\n".join(lines)
