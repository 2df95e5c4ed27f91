"""Wires every Slack listener onto a fresh AsyncApp (no logic here).

Each listener module has `register(app, services)`, which binds its listeners to
the services: listeners read nothing from bolt's context (which bolt copies for
lazy listeners) and are easy to put on an app of their own in a test.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from slack_bolt.async_app import AsyncApp

from bot.app import Services
from bot.networks.base import PayloadError
from bot.networks.payload import load_object
from handlers import actions, handoff, oncall, slack_events, stats


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    app = AsyncApp(
        client=services.slack.client,
        signing_secret=settings.slack_signing_secret or "socket-mode",
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    for module in (slack_events, actions, handoff, oncall, stats):
        module.register(app, services)
    return app


def malformed(body: bytes, content_type: str) -> str | None:
    """Why a signed Slack body has the wrong shape for bolt, or None if it is fine.

    bolt answers 500 (and Slack retries) when an envelope field has the wrong type,
    so shapes are checked before dispatching, with the one JSON reader of every route.
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    try:
        if content_type.startswith("application/json") or text.startswith("{"):
            data = load_object(body)
            if data.get("type") == "event_callback" and not isinstance(data.get("event"), dict):
                return "event must be an object"
            return None
        form = parse_qs(text, keep_blank_values=True)
        if any("\x00" in value for values in form.values() for value in values):
            return "a form field holds a NUL"
        if "payload" in form:
            load_object(form["payload"][0])
    except PayloadError as exc:
        return exc.message
    except ValueError:
        return "the body is neither JSON nor a form"
    return None
