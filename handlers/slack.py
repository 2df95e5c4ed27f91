"""Wires every Slack listener onto a fresh AsyncApp (no logic here)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from handlers import actions, handoff, oncall, slack_events, stats


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    app = AsyncApp(
        client=services.slack.client,
        signing_secret=settings.slack_signing_secret or "socket-mode",
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    async def inject(context: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        context["services"] = services
        await next()

    app.use(inject)
    app.event("message")(slack_events.on_message)
    app.action("relaydesk.claim")(ack=actions.ack_only, lazy=[actions.claim])
    app.action("relaydesk.resolve")(ack=actions.ack_only, lazy=[actions.resolve])
    app.action("relaydesk.reopen")(ack=actions.ack_only, lazy=[actions.reopen])
    app.action("relaydesk.resend")(ack=actions.ack_only, lazy=[actions.resend])
    app.action("relaydesk.handoff")(ack=actions.ack_only, lazy=[handoff.button])
    app.shortcut("relaydesk.handoff")(ack=actions.ack_only, lazy=[handoff.shortcut])
    app.view(handoff.MODAL)(handoff.submit)
    app.command("/handoff")(handoff.command)
    app.command("/social-stats")(stats.command)
    oncall.register(app, services)
    return app


def malformed(body: bytes, content_type: str) -> str | None:
    """Why a signed Slack body has the wrong shape for bolt, or None if it is fine.

    bolt answers 500 (and Slack retries) when an envelope field has the wrong type,
    so shapes are checked before dispatching.
    """
    try:
        if content_type.startswith("application/json"):
            data = json.loads(body)
            if not isinstance(data, dict):
                return "the JSON body must be an object"
            if data.get("type") == "event_callback" and not isinstance(data.get("event"), dict):
                return "event must be an object"
            return None
        form = parse_qs(body.decode(), keep_blank_values=True)
        if "payload" in form and not isinstance(json.loads(form["payload"][0]), dict):
            return "payload must be a JSON object"
    except (ValueError, UnicodeDecodeError):
        return "the body is neither JSON nor a form"
    return None
