"""`/webhooks/<network>`: verify, parse, store, answer. Nothing slow runs here."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.app import Services
from bot.networks.base import WebhookError
from storage.coordination import CoordinationUnavailable
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
MAX_BODY = 1024 * 1024
OK = '{"ok": true}'  # json.dumps({"ok": True}), encoded once


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def webhook(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    name = request.match_info["network"]
    network = services.networks.get(name)
    if network is None:
        return error(404, f"network '{name}' is not configured")
    try:
        if request.method == "GET":
            answer = network.handshake(request.query)
            return web.Response(
                status=answer.status, text=answer.body, content_type=answer.content_type
            )
        if request.content_length is not None and request.content_length > MAX_BODY:
            return error(413, "body over 1 MiB")
        body = await request.read()
        network.verify(request.headers, body)
        events = network.parse(body)
    except WebhookError as exc:
        log.info("webhook %s refused (%s): %s", name, exc.status, exc.message)
        services.metrics.inbound.labels(name, f"refused_{exc.status}").inc()
        return error(exc.status, exc.message)
    try:
        stored = await services.relay.receive(events)
    except WebhookError as exc:
        services.metrics.inbound.labels(name, f"refused_{exc.status}").inc()
        return error(exc.status, exc.message)
    except (DatabaseUnavailable, CoordinationUnavailable) as exc:
        log.error("webhook %s: storage unavailable, asking the sender to retry: %s", name, exc)
        services.metrics.inbound.labels(name, "unavailable").inc()
        return error(503, "temporarily unable to store the message; retry later")
    for item in stored:
        outcome = "stored" if item.message_id is not None else "duplicate"
        services.metrics.inbound.labels(name, outcome).inc()
    return web.Response(text=OK, content_type="application/json")


def setup(app: web.Application) -> None:
    app.router.add_route("GET", "/webhooks/{network}", webhook)
    app.router.add_route("POST", "/webhooks/{network}", webhook)
