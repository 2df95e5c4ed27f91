"""The aiohttp application: Slack, webhooks, health, metrics, stats API.

`create_app(settings)` builds everything fresh (no module-level app), so tests
build one per test. Background work (the dispatcher) lives in the app's
`cleanup_ctx`: started with it, cancelled and awaited on shutdown.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.app import Services, build_services
from bot.config import Settings
from bot.scheduler import Scheduler
from bot.socket_mode import SocketMode, start_socket_mode
from handlers import webhooks
from handlers.files import download as file_download
from handlers.health import healthz, metrics
from handlers.moments import api as moments_api
from handlers.reports import page as reports_page
from handlers.slack import build_bolt_app, malformed
from handlers.stats import api as stats_api
from handlers.webhooks import MAX_BODY, SERVICES
from storage.coordination import DEFAULT_PREFIX
from storage.models import utcnow
from storage.rollups import fold

log = logging.getLogger(__name__)

# On shutdown, in-flight requests get SHUTDOWN_SECONDS (aiohttp), then a dispatcher
# pass in flight gets DRAIN_SECONDS: together within the 10 s a platform allows.
SHUTDOWN_SECONDS = 4.0
DRAIN_SECONDS = 4.0
STOP_POLL_SECONDS = 0.5  # a background task still running after a cancel is cancelled again
# Slack's advice: refuse a request whose timestamp is more than five minutes off.
SIGNATURE_MAX_AGE = 300


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    run_workers: bool = True,
    run_timers: bool = True,
    coordination_prefix: str = DEFAULT_PREFIX,
) -> web.Application:
    """`run_workers`/`run_timers` start the dispatcher and the scheduler (tests may not)."""
    services = build_services(settings, clock=clock, coordination_prefix=coordination_prefix)
    bolt = build_bolt_app(services)
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICES] = services

    # In Socket Mode without a signing secret nothing posted here can be verified.
    secret = settings.slack_signing_secret

    async def slack_events(request: web.Request) -> web.Response:
        """Verify, then let bolt dispatch; a malformed signed body is a 400, not a 500."""
        body = await request.read()
        if not secret or not slack_signed(secret, request.headers, body, time.time()):
            return webhooks.error(401, "missing, stale or wrong Slack signature")
        problem = malformed(body, request.content_type)
        if problem:
            return webhooks.error(400, problem)
        try:
            bolt_request = await to_bolt_request(request)
            bolt_response = await bolt.async_dispatch(bolt_request)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # Raised by bolt while reading a payload of the wrong shape (bolt handles
            # errors in our listeners itself).
            log.warning("malformed Slack request: %s", exc)
            return webhooks.error(400, "malformed Slack payload")
        return await to_aiohttp_response(bolt_response)

    app.router.add_post("/slack/events", slack_events)
    webhooks.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/stats", stats_api)
    app.router.add_get("/api/moments", moments_api)
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/files/{token}", file_download)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await services.db.migrate()
        socket: SocketMode | None = None
        if settings.slack_app_token:
            socket = await start_socket_mode(bolt, settings.slack_app_token)
        tasks = []
        if run_workers:
            tasks.append(asyncio.create_task(services.dispatcher.run(), name="dispatcher"))
            if settings.listening:
                tasks.append(asyncio.create_task(services.listening.run(), name="listening"))
            if services.x_search is not None:
                tasks.append(asyncio.create_task(services.x_search.run(), name="x-search"))
        if run_timers:
            scheduler = Scheduler(
                services.coordinator, interval=settings.sweep_seconds, clock=clock
            )
            scheduler.add("daily-summary", services.summary.tick)
            scheduler.add("escalation", services.escalations.sweep)
            scheduler.add("stats-rollups", lambda now: fold(services.db))
            scheduler.add("moments", services.moments.sweep)
            scheduler.add("spikes", services.spikes.tick)
            tasks.append(asyncio.create_task(scheduler.run(), name="scheduler"))
        log.info("relaydesk ready: networks %s", ", ".join(services.networks) or "none")
        yield
        if socket is not None:
            await socket.close()
        await services.dispatcher.drain(DRAIN_SECONDS)
        for task in tasks:
            await stop_task(task)
        await services.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def slack_signed(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """Slack's v0 signature over the raw bytes, with a fresh timestamp.

    Computed here on bytes (slack_sdk's verifier decodes the body as UTF-8 first, so
    any other bytes raised before the signature was even checked).
    """
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > SIGNATURE_MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    given = headers.get("X-Slack-Signature", "").encode("utf-8", "replace")
    return hmac.compare_digest(expected.encode(), given)


def services_of(app: web.Application) -> Services:
    return app[SERVICES]


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel `task` until it ends. One cancellation can be lost: on Python 3.11 an
    `asyncio.wait_for` whose inner call finishes at the moment it is cancelled returns
    the result and drops the cancellation (seen with a Slack post answered just as
    SIGTERM came: the scheduler went on to its next round and serve never exited)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_POLL_SECONDS)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed while stopping", task.get_name(), exc_info=task.exception())
