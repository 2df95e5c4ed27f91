"""`GET /files/<token>`: a file the team shared with a generic-webhook customer, through
a signed, time-limited link (`bot.services.file_links`), streamed from Slack."""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from bot.services.file_links import verified_file
from bot.slack import SlackError
from handlers.webhooks import SERVICES

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024 * 1024  # what Slack lets a workspace upload


async def download(request: web.Request) -> web.StreamResponse:
    """Anything but a valid, unexpired link is the 404 an unknown path gets."""
    services = request.app[SERVICES]
    linked = verified_file(services.settings, request.match_info["token"], services.clock())
    if linked is None:
        raise web.HTTPNotFound()
    chunks = services.slack.file_chunks(linked.url, MAX_FILE_BYTES)
    try:
        first = await anext(chunks, b"")
    except SlackError as exc:
        log.warning("a linked file could not be fetched from Slack: %s", exc.code)
        raise web.HTTPBadGateway() from None
    response = web.StreamResponse(
        headers={
            "Content-Type": linked.mimetype,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(linked.name)}",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except SlackError as exc:  # headers are gone: cut the body short
        log.warning("a linked file broke off: %s", exc.code)
        raise ConnectionResetError from None
    await response.write_eof()
    return response
