"""Meaningful moments: the reaction events, the `relaydesk.moment` shortcut and its form,
and `GET /api/moments`."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks.moments import MODAL, moment_json
from bot.networks.base import PayloadError
from bot.networks.payload import load_object
from bot.services.moments import ReactionEvent
from bot.services.refs import MAX_ID
from bot.services.refusal import Refusal
from bot.slack import SlackError
from handlers.answer import ack_only, tell
from handlers.payloads import MessageShortcut, ViewSubmission
from handlers.stats import api_window
from handlers.webhooks import SERVICES, error
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

SHORTCUT = "relaydesk.moment"


def register(app: AsyncApp, services: Services) -> None:
    listeners = MomentListeners(services)
    app.event("reaction_added")(listeners.added)
    app.event("reaction_removed")(listeners.removed)
    app.shortcut(SHORTCUT)(ack=ack_only, lazy=[listeners.shortcut])
    app.view(MODAL)(listeners.submit)


class MomentListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def added(self, event: ReactionEvent) -> None:
        """Stored before bolt answers Slack (process_before_response): nothing is lost."""
        await self._services.moments.reaction_added(event)

    async def removed(self, event: ReactionEvent) -> None:
        await self._services.moments.reaction_removed(event)

    async def shortcut(self, body: MessageShortcut) -> None:
        """Open the note form for the message's conversation, or say why not."""
        services = self._services
        user = body["user"]["id"]
        channel = body["channel"]["id"]
        thread_ts = body.get("message", {}).get("thread_ts")
        try:
            view = await services.moments.form(channel, body["message_ts"], thread_ts)
        except Refusal as exc:
            await tell(services.slack, channel, user, exc.sentence)
            return
        try:
            await services.slack.call("views.open", trigger_id=body["trigger_id"], view=view)
        except SlackError as exc:
            log.warning("could not open the moment form for %s: %s", user, exc.code)
            await tell(services.slack, channel, user, f"Could not open the form ({exc.code}).")

    async def submit(self, ack: AsyncAck, body: ViewSubmission) -> None:
        """Form submitted: record the moment, or show the reason on the note field."""
        services = self._services
        user = body["user"]["id"]
        view = body["view"]
        try:
            meta = load_object(view.get("private_metadata") or "{}")
            conversation_id = int(meta["conversation"])
            channel, ts, thread = str(meta["channel"]), str(meta["ts"]), str(meta["thread"])
            if not 0 < conversation_id <= MAX_ID:
                raise ValueError("no conversation id")
        except (PayloadError, KeyError, TypeError, ValueError):
            await ack(response_action="errors", errors={"note": "This form is not ours."})
            return
        note = view["state"]["values"].get("note", {}).get("note", {}).get("value") or ""
        try:
            text = await services.moments.record_note(
                conversation_id=conversation_id,
                channel=channel,
                ts=ts,
                thread_ts=thread,
                user=user,
                note=note,
                form_id=str(view.get("id") or f"{user}:{channel}:{ts}"),
            )
        except Refusal as exc:
            await ack(response_action="errors", errors={"note": exc.sentence})
            return
        await ack()
        await tell(services.slack, channel, user, text)


async def api(request: web.Request) -> web.Response:
    """`GET /api/moments?since=&until=`: a JSON list of every moment of the window,
    oldest first."""
    window = api_window(request)
    if isinstance(window, web.Response):
        return window
    since, until = window
    try:
        moments = await request.app[SERVICES].moments.between(since, until)
    except DatabaseUnavailable:
        return error(503, "the database is not answering; retry later")
    return web.json_response([moment_json(m) for m in moments])
