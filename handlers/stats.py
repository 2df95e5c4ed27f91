"""`/social-stats` (ephemeral Block Kit) and `GET /api/stats` (JSON for charts)."""

from __future__ import annotations

import hmac
import json
from datetime import datetime

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.app import Services
from bot.blocks.stats import stats_blocks
from bot.routing import TAG_RULE, is_tag
from bot.services.refusal import Refusal
from bot.services.report_links import report_link
from bot.services.reports import ReportFilters, parse_instant
from bot.services.stats import parse_stats_command, stats_report, window_figures
from handlers.payloads import SlashCommand
from handlers.webhooks import SERVICES, error
from storage.db import DatabaseUnavailable


def register(app: AsyncApp, services: Services) -> None:
    app.command("/social-stats")(StatsListeners(services).command)


class StatsListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def command(self, ack: AsyncAck, command: SlashCommand) -> None:
        services = self._services
        settings = services.settings
        if settings.stats_users and command["user_id"] not in settings.stats_users:
            await ack(
                "Sorry, `/social-stats` is only for the people listed in STATS_USERS. "
                "Ask an admin to add you."
            )
            return
        now = services.clock()
        try:
            request = parse_stats_command(
                command.get("text") or "",
                now=now,
                tz=settings.tz,
                networks=settings.enabled_networks(),
                teams=settings.teams,
            )
        except Refusal as exc:
            await ack(exc.sentence)
            return
        try:
            report = await stats_report(services.db, request, now)
        except DatabaseUnavailable:
            await ack("The statistics database is not answering right now; try again in a minute.")
            return
        scope = ReportFilters(request.period, network=request.network, team=request.team)
        # /reports has no tag filter: no link that would show other figures
        link = None if request.tag else report_link(settings, scope.params(), now)
        await ack(
            text=f"Social stats: {request.window.title}",
            blocks=stats_blocks(
                report,
                settings.tz,
                report_url=link,
                business_hours=settings.business_hours is not None,
            ),
        )


def _time(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return parse_instant(value, name)
    except Refusal as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": exc.sentence}), content_type="application/json"
        ) from None


def api_window(request: web.Request) -> tuple[datetime, datetime] | web.Response:
    """The bearer check and the `since`/`until` of `/api/stats` and `/api/moments`:
    the window, or the answer that refuses the request."""
    services = request.app[SERVICES]
    token = services.settings.api_token
    if not token:
        return error(404, f"not found: set API_TOKEN to enable {request.path}")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error(401, "missing or wrong bearer token")
    since = _time(request, "since")
    until = _time(request, "until") or services.clock()
    if since is None:
        return error(400, "since is required (ISO-8601 with a UTC offset)")
    if until < since:
        return error(400, "until must not be before since")
    return since, until


async def api(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    window = api_window(request)
    if isinstance(window, web.Response):
        return window
    since, until = window
    now = services.clock()
    tag = request.query.get("tag", "").lower() or None
    if tag is not None and not is_tag(tag):
        return error(400, f"tag must be {TAG_RULE}")
    try:
        figures = await window_figures(
            services.db,
            since,
            until,
            network=request.query.get("network") or None,
            team=request.query.get("team") or None,
            now=now,
            tag=tag,
        )
    except DatabaseUnavailable:
        return error(503, "the database is not answering; retry later")
    return web.json_response(figures)
