"""The handoff form opened by the *Hand off conversation* message shortcut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.form import modal
from storage.models import Conversation

MODAL = "relaydesk.handoff_modal"


def handoff_modal(conversation: Conversation, channel: str, teams: Sequence[str]) -> dict[str, Any]:
    """The team to hand off to (any but the conversation's own) and an optional note.

    The conversation and the channel the shortcut was used in ride along as metadata.
    """
    conversation_id = conversation.id
    return modal(
        MODAL,
        {"conversation": conversation_id, "channel": channel},
        f"Hand off #{conversation_id}",
        "Hand off",
        [
            {
                "type": "input",
                "block_id": "team",
                "label": {"type": "plain_text", "text": "Team"},
                "element": {
                    "type": "static_select",
                    "action_id": "team",
                    "options": [
                        {"text": {"type": "plain_text", "text": t.title()}, "value": t}
                        for t in teams
                        if t != conversation.team
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "note",
                "optional": True,
                "label": {"type": "plain_text", "text": "Note for the team"},
                "element": {"type": "plain_text_input", "action_id": "note", "multiline": True},
            },
        ],
    )
