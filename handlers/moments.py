"""Meaningful moments: the reaction events, the `relaydesk.moment` shortcut and its form,
and `GET /api/moments`."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks.moments import MODAL, moment_json
from bot.services.moments import ReactionEvent
from bot.services.refusal import Refusal
from handlers.answer import ack_only, tell
from handlers.forms import NOT_OUR_FORM, form_metadata, open_shortcut_form
from handlers.payloads import MessageShortcut, ViewSubmission
from handlers.stats import api_window
from handlers.webhooks import SERVICES, error
from storage.db import DatabaseUnavailable

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
        await open_shortcut_form(services.slack, body, "the form", services.moments.form)

    async def submit(self, ack: AsyncAck, body: ViewSubmission) -> None:
        """Form submitted: record the moment, or show the reason on the note field."""
        services = self._services
        user = body["user"]["id"]
        view = body["view"]
        try:
            conversation_id, meta = form_metadata(view.get("private_metadata"))
            channel, ts, thread = str(meta["channel"]), str(meta["ts"]), str(meta["thread"])
        except (KeyError, ValueError):
            await ack(response_action="errors", errors={"note": NOT_OUR_FORM})
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
