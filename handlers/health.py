"""`GET /healthz` and `GET /metrics`: render what the health service found."""

from __future__ import annotations

from aiohttp import web

from handlers.webhooks import SERVICES


async def healthz(request: web.Request) -> web.Response:
    report = await request.app[SERVICES].health.check()
    return web.json_response(
        {"status": "ok" if report.healthy else "degraded", **report.status, **report.figures},
        status=200 if report.healthy else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; SQL-derived gauges are read at scrape time."""
    services = request.app[SERVICES]
    gauges: dict[str, tuple[str, float]] = {}
    counts = await services.health.gauges()
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
