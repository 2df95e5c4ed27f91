"""The shell of our forms (modals): what a form is about rides along as JSON metadata,
read back by `handlers.forms`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from bot.blocks.conversation import Block


def modal(
    callback_id: str, metadata: Mapping[str, object], title: str, submit: str, blocks: list[Block]
) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }
