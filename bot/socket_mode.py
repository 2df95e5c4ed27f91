"""Socket Mode: Slack traffic over a websocket instead of `POST /slack/events`.

With `SLACK_APP_TOKEN` set, `start_socket_mode` connects bolt's aiohttp Socket
Mode handler, so no public URL is needed for Slack; the network webhooks are
still served over HTTP. Bolt acks each envelope (`{"envelope_id": ...}`) once
its listeners return, as in HTTP mode with `process_before_response`.

The first connection is made here, not in the background: a refused app token
or an unreachable Slack stops `serve` at start with one sentence (a
`ConfigError`). After that, slack_sdk reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.config import ConfigError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0


class SocketMode:
    """A connected Socket Mode session; `close()` ends it."""

    def __init__(self, handler: AsyncSocketModeHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        """Disconnect, and wait for slack_sdk's background tasks to finish cancelling."""
        client = self._handler.client
        await self._handler.close_async()
        tasks = (client.message_processor, client.current_session_monitor, client.message_receiver)
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
        log.info("socket mode closed")


async def start_socket_mode(
    bolt: AsyncApp,
    app_token: str,
    *,
    ping_interval: float = 10.0,
    timeout: float = CONNECT_TIMEOUT,
) -> SocketMode:
    """Connect `bolt` to Slack over Socket Mode with the app-level (`xapp-`) token.

    The websocket URL comes from `apps.connections.open` on bolt's own Web API
    client (so `SLACK_API_URL` applies). Raises `ConfigError` when Slack refuses
    the token or the connection cannot be made within `timeout` seconds.
    """
    handler = AsyncSocketModeHandler(bolt, app_token, ping_interval=ping_interval)
    client = handler.client
    try:
        client.wss_uri = await asyncio.wait_for(client.issue_new_wss_url(), timeout)
        # connect() retries forever on its own; bound the first attempt.
        await asyncio.wait_for(handler.connect_async(), timeout)
    except SlackApiError as exc:
        await handler.close_async()
        code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        raise ConfigError(
            f"SLACK_APP_TOKEN was refused by Slack ({code or exc.response.status_code}): "
            "use an app-level token with connections:write and enable Socket Mode"
        ) from None
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        await handler.close_async()
        raise ConfigError(f"Socket Mode could not connect to Slack: {exc or 'timed out'}") from None
    log.info("socket mode connected")
    return SocketMode(handler)
