"""Slack event listeners: thread messages become replies or notes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from bot.services.replies import MessageEvent

CORRECTIONS = frozenset({"message_changed", "message_deleted"})


def register(app: AsyncApp, services: Services) -> None:
    async def on_message(event: MessageEvent, body: dict[str, Any]) -> None:
        """Stored before bolt answers Slack (process_before_response), so nothing is lost.
        An edit or deletion of a team reply reaches the customer's copy."""
        if event.get("subtype") in CORRECTIONS:
            await services.corrections.on_change(event, body.get("event_id"))
        else:
            await services.replies.on_message(event, body.get("event_id"))

    app.event("message")(on_message)
