"""`GET /healthz` (SQL and Redis, each answered within two seconds) and `GET /metrics`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.app import Services
from handlers.webhooks import SERVICES
from storage.coordination import CoordinationUnavailable
from storage.db import DatabaseUnavailable


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    status: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.db.ping(), 2)
        await asyncio.wait_for(services.db.check_writes(), 2)
        status["sql"] = "ok"
    except (DatabaseUnavailable, TimeoutError) as exc:
        status["sql"] = f"down: {exc or 'timeout'}"
    if services.settings.redis_url is None:
        status["redis"] = "not configured (single process)"
    else:
        try:
            await asyncio.wait_for(services.coordinator.ping(), 2)
            status["redis"] = "ok"
        except (CoordinationUnavailable, TimeoutError) as exc:
            status["redis"] = f"down: {exc or 'timeout'}"
    healthy = all(not value.startswith("down") for value in status.values())
    return web.json_response(
        {
            "status": "ok" if healthy else "degraded",
            **status,
            **(await _deliveries(services) if status["sql"] == "ok" else {}),
        },
        status=200 if healthy else 503,
    )


async def _deliveries(services: Services) -> dict[str, int]:
    """Informative only (the status code does not depend on them): the age of the oldest
    pending delivery in seconds, and how many deliveries failed for good."""
    try:
        return await asyncio.wait_for(services.repo.delivery_gauges(services.clock()), 2)
    except (DatabaseUnavailable, TimeoutError):
        return {}


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; SQL-derived gauges are read at scrape time."""
    services = request.app[SERVICES]
    gauges: dict[str, tuple[str, float]] = {}
    try:
        counts = await services.repo.gauges(services.clock())
    except DatabaseUnavailable:
        counts = {}
    helps = {
        "pending": ("relaydesk_pending_deliveries", "Messages and replies waiting to be delivered"),
        "unanswered": (
            "relaydesk_unanswered_conversations",
            "Open conversations waiting for a reply",
        ),
        "escalations": ("relaydesk_escalations_sent", "Escalation pages sent so far"),
        "oldest_pending_seconds": (
            "relaydesk_oldest_pending_delivery_seconds",
            "Age of the oldest message or reply waiting to be delivered (0: none)",
        ),
        "failed": (
            "relaydesk_failed_deliveries",
            "Messages Slack refused and replies not delivered, for good",
        ),
    }
    for key, (name, help_text) in helps.items():
        if key in counts:
            gauges[name] = (help_text, float(counts[key]))
    body = services.metrics.render(gauges)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
