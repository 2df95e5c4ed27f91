"""`GET /healthz`: SQL and Redis, each answered within two seconds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from handlers.webhooks import SERVICES
from storage.coordination import CoordinationUnavailable
from storage.db import DatabaseUnavailable


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    status: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.db.ping(), 2)
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
        {"status": "ok" if healthy else "degraded", **status}, status=200 if healthy else 503
    )
