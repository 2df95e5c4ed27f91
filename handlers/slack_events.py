"""Slack event listeners: thread messages become replies or notes."""

from __future__ import annotations

from typing import Any

from bot.app import Services


async def on_message(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
    """Stored before bolt answers Slack (process_before_response), so nothing is lost."""
    services: Services = context["services"]
    await services.replies.on_message(event, body.get("event_id"))
