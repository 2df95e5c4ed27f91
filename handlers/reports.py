"""`GET /reports`: the HTML reports, for a valid signed link or the API bearer token.

Anything else is the same 404 an unknown path gets: the route does not reveal
itself. The page's links to other filters are signed too, with the visitor's
expiry (a bearer visitor's run LINK_LIFETIME from now), so a link holder can
browse until the link expires and never longer.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from urllib.parse import urlencode

from aiohttp import web

from bot.config import Settings
from bot.reports.page import STYLE_HASH, render
from bot.services.refusal import Refusal
from bot.services.report_links import LINK_LIFETIME, link_key, signed_params, verified_expiry
from bot.services.reports import ReportFilters, build_report, parse_filters
from handlers.webhooks import SERVICES
from storage.db import DatabaseUnavailable

HEADERS = {
    # No script at all, and no style but the page's own stylesheet.
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # a signed link never leaks to another site
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _bearer(request: web.Request, settings: Settings) -> bool:
    token = settings.api_token
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _granted_until(request: web.Request, settings: Settings, now: datetime) -> int | None:
    """Until when (Unix seconds) this visitor may browse the reports; None: not at all."""
    if _bearer(request, settings):
        return int((now + LINK_LIFETIME).timestamp())
    return verified_expiry(link_key(settings), request.query, now)


async def page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    settings = services.settings
    now = services.clock()
    expires = _granted_until(request, settings, now)
    key = link_key(settings)
    if expires is None or key is None:
        raise web.HTTPNotFound()
    try:
        filters = parse_filters(request.query, settings.tz)
    except Refusal as exc:
        return web.Response(status=400, text=exc.sentence, headers=HEADERS)
    try:
        report = await build_report(services.db, filters, now, settings.tz)
    except DatabaseUnavailable:
        return web.Response(
            status=503,
            text="The database is not answering; try again in a minute.",
            headers=HEADERS,
        )

    def href(target: ReportFilters) -> str:
        return "?" + urlencode(signed_params(key, target.params(), expires))

    html = render(report, href, networks=settings.enabled_networks(), teams=settings.teams)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)
