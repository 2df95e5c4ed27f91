"""Wires every Slack listener onto a fresh AsyncApp (no logic here).

Each listener module has `register(app, services)`, which binds its listeners to
the services: listeners read nothing from bolt's context (which bolt copies for
lazy listeners) and are easy to put on an app of their own in a test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from slack_bolt import BoltResponse
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.app import Services
from bot.networks.base import PayloadError
from bot.networks.payload import load_object
from handlers import (
    actions,
    handoff,
    listening,
    moments,
    oncall,
    saved_replies,
    slack_events,
    stats,
)
from storage.coordination import CoordinationUnavailable
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)


def build_bolt_app(services: Services) -> AsyncApp:
    settings = services.settings
    app = AsyncApp(
        client=services.slack.client,
        signing_secret=settings.slack_signing_secret or "socket-mode",
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    for module in (
        slack_events,
        actions,
        handoff,
        oncall,
        stats,
        saved_replies,
        moments,
        listening,
    ):
        module.register(app, services)
    app.error(listener_error)
    app.middleware(own_app_only(services))
    return app


# Payloads a person produces by clicking, typing or submitting in our app's surfaces.
INTERACTIVE = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "message_action",
        "shortcut",
    }
)


def own_app_only(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Middleware: interactivity from another workspace or another app is refused (403)."""

    async def middleware(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        if body.get("type") in INTERACTIVE:
            refusal = await _foreign(body, context, services)
            if refusal is not None:
                log.warning("interactivity refused: %s", refusal)
                return _json_answer(403, refusal)
        await next()
        return None

    return middleware


async def _foreign(
    body: dict[str, Any], context: AsyncBoltContext, services: Services
) -> str | None:
    """Why an interactivity payload is not our app's, or None.

    Only interactivity: Events API envelopes are not checked (an app installed in an
    organisation receives events whose team_id is another workspace's; the shared
    conformance corpus sends T111 events to a fake whose auth.test says T0001). Our
    workspace is the one bolt's authorization learnt from `auth.test`, our app the one
    its bot belongs to (`bots.info`); while either is unknown, nothing is refused on it.
    """
    authorized = context.authorize_result
    team = body.get("team")
    sender = team.get("id") if isinstance(team, dict) else None
    own = authorized.team_id if authorized is not None else None
    if sender and own and sender != own:
        return f"this app serves workspace {own} only; ask its admins to install it"
    app = body.get("api_app_id")
    bot = authorized.bot_id if authorized is not None else None
    ours = await services.slack.app_id(bot) if isinstance(app, str) and bot else None
    if ours and app != ours:
        return f"this payload is for app {app}, not this one ({ours})"
    return None


async def listener_error(error: Exception) -> BoltResponse | None:
    """The answer to Slack when a listener raised before the ack (bolt's default is 500).

    An unavailable store is a 503 (Slack retries, and nothing was marked seen); a payload
    of the wrong shape is a 400; anything else stays bolt's 500, logged by bolt.
    """
    if isinstance(error, DatabaseUnavailable | CoordinationUnavailable):
        log.warning("Slack request refused, storage unavailable: %s", error)
        return _json_answer(503, "temporarily unable to store this; retry later")
    if isinstance(error, KeyError | TypeError | ValueError | AttributeError | IndexError):
        log.warning("malformed Slack payload: %r", error)
        return _json_answer(400, "malformed Slack payload")
    return None


def _json_answer(status: int, message: str) -> BoltResponse:
    return BoltResponse(
        status=status,
        body=json.dumps({"error": message}),
        headers={"content-type": "application/json"},
    )


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
