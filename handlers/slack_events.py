"""Slack event listeners: thread messages become replies or notes."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from bot.services.replies import MessageEvent

CORRECTIONS = frozenset({"message_changed", "message_deleted"})


def register(app: AsyncApp, services: Services) -> None:
    async def on_message(event: MessageEvent) -> None:
        """Stored before bolt answers Slack (process_before_response), so nothing is lost;
        a store that cannot write makes it a 503 (`handlers.slack.listener_error`). An
        edit or deletion of a team reply reaches the customer's copy."""
        if event.get("subtype") in CORRECTIONS:
            await services.corrections.on_change(event)
        else:
            await services.replies.on_message(event)

    app.event("message")(on_message)
