"""Socket Mode round trip: a local websocket stand-in for Slack's Socket Mode server.

The bot asks the fake Web API for a websocket URL (`apps.connections.open`),
connects to the stand-in, receives an `events_api` envelope carrying a thread
reply, acks it with `{"envelope_id": ...}`, and relays the reply to the customer.
Envelope shape: bolt-python's `tests/adapter_tests/socket_mode/mock_socket_mode_server.py`
(`shared/refs/slack/socket_mode_message_retry_envelope.json`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ConfigError, load_settings
from bot.socket_mode import start_socket_mode
from bot.web import create_app, services_of
from handlers.slack import build_bolt_app
from tests.cli.conftest import Fakes
from tests.harness import AGENT, INBOX, TELEGRAM_SECRET
from tests.signing import telegram_headers

APP_TOKEN = "xapp-1-A0001-1-socketmode"


class SocketModeStandIn:
    """One websocket endpoint: says hello, sends envelopes, records what comes back."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> SocketModeStandIn:
        app = web.Application()
        app.router.add_get("/link", self._connect)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}/link"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"}}
        )
        self.connected.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.received.append(json.loads(message.data))
        self.closed.set()
        return socket

    async def send(self, envelope: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send_json(envelope)

    async def ack_of(self, envelope_id: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.received:
                if message.get("envelope_id") == envelope_id:
                    return message
            await asyncio.sleep(0.02)
        raise AssertionError(f"no ack for {envelope_id}; got {self.received}")


def events_api(envelope_id: str, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope_id": envelope_id,
        "payload": {
            "token": "verification-token",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{envelope_id[:8]}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0001", "user_id": "UBOT0001", "is_bot": True}],
        },
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
    }


@pytest.fixture
async def stand_in() -> AsyncIterator[SocketModeStandIn]:
    server = await SocketModeStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


async def until(check: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_thread_reply_over_socket_mode_reaches_the_customer(
    fakes: Fakes, stand_in: SocketModeStandIn
) -> None:
    fakes.slack.socket_mode_url = stand_in.url
    # No signing secret: in Socket Mode Slack traffic is not signed HTTP.
    env = fakes.environment(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET="")
    settings = load_settings(env, env_file=None)
    settings.require_slack()
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        socket = await start_socket_mode(build_bolt_app(services_of(client.app)), APP_TOKEN)
        await asyncio.wait_for(stand_in.connected.wait(), 15)
        opened = fakes.slack.calls_to("apps.connections.open")
        assert opened[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"

        # A customer writes on Telegram (network webhooks are still plain HTTP).
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": 42, "type": "private", "first_name": "Lin"},
                "from": {"id": 42, "is_bot": False, "first_name": "Lin"},
                "text": "Where is my parcel?",
            },
        }
        response = await client.post(
            "/webhooks/telegram", json=update, headers=telegram_headers(TELEGRAM_SECRET)
        )
        assert response.status == 200
        # The root is in Slack, and its thread is known in SQL (a reply before that
        # would not belong to a conversation yet).
        repo = services_of(client.app).repo
        deadline = time.monotonic() + 15
        while (conversation := await repo.conversation(1)) is None or not conversation.thread_ts:
            assert time.monotonic() < deadline, "no thread for conversation #1"
            await asyncio.sleep(0.02)
        root_ts = conversation.thread_ts

        # The agent answers in the thread; the event arrives over the websocket.
        text = "It left the warehouse this morning."
        reply = fakes.slack.add_message(INBOX, text, user=AGENT, thread_ts=root_ts)
        event = {
            "type": "message",
            "channel": INBOX,
            "user": AGENT,
            "text": text,
            "ts": reply["ts"],
            "thread_ts": root_ts,
            "parent_user_id": "UBOT0001",
            "channel_type": "channel",
            "event_ts": reply["ts"],
        }
        await stand_in.send(events_api("08cfc559-d933-402e-a5c1-79e135afaae4", event))

        ack = await stand_in.ack_of("08cfc559-d933-402e-a5c1-79e135afaae4")
        assert ack == {"envelope_id": "08cfc559-d933-402e-a5c1-79e135afaae4"}
        sent = await fakes.telegram.wait_for("sendMessage", timeout=15)
        assert sent[0].params == {"chat_id": 42, "text": text}
        await until(
            lambda: "white_check_mark" in fakes.slack.reactions(INBOX, reply["ts"]),
            "the delivered reaction",
        )
        replies = await repo.replies(1)
        assert [(r.text, r.state) for r in replies] == [(text, "sent")]

        await socket.close()
        await asyncio.wait_for(stand_in.closed.wait(), 15)
    finally:
        await client.close()


async def test_the_saved_replies_search_answers_over_socket_mode(
    fakes: Fakes, stand_in: SocketModeStandIn
) -> None:
    """Socket Mode has no options URL: a `block_suggestion` comes as an `interactive`
    envelope, and the options ride on its ack."""
    fakes.slack.socket_mode_url = stand_in.url
    env = fakes.environment(SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET="")
    settings = load_settings(env, env_file=None)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        services = services_of(client.app)
        socket = await start_socket_mode(build_bolt_app(services), APP_TOKEN)
        await asyncio.wait_for(stand_in.connected.wait(), 15)
        assert "Added" in await services.saved_replies.manage(AGENT, "add hello Hi {customer_name}")
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": 42, "type": "private", "first_name": "Lin"},
                "from": {"id": 42, "is_bot": False, "first_name": "Lin"},
                "text": "Hello?",
            },
        }
        headers = telegram_headers(TELEGRAM_SECRET)
        assert (await client.post("/webhooks/telegram", json=update, headers=headers)).status == 200
        metadata = json.dumps({"conversation": 1, "channel": INBOX, "thread_ts": "1.000001"})
        envelope_id = "5c1fd1a2-4f0e-4a44-9d44-4b0a3e9e7a11"
        await stand_in.send(
            {
                "envelope_id": envelope_id,
                "payload": {
                    "type": "block_suggestion",
                    "user": {"id": AGENT, "team_id": "T0001"},
                    "team": {"id": "T0001", "domain": "example"},
                    "api_app_id": "A0001",
                    "token": "verification-token",
                    "action_id": "relaydesk.saved_reply_pick",
                    "block_id": "saved",
                    "value": "hi",
                    "view": {"id": "V1", "type": "modal", "private_metadata": metadata},
                },
                "type": "interactive",
                "accepts_response_payload": True,
            }
        )
        ack = await stand_in.ack_of(envelope_id)
        options = ack["payload"]["options"]
        assert [o["text"]["text"] for o in options] == ["hello: Hi {customer_name}"]
        await socket.close()
    finally:
        await client.close()


async def test_a_refused_app_token_is_a_configuration_error(fakes: Fakes) -> None:
    fakes.slack.fail(
        "apps.connections.open", status=200, body={"ok": False, "error": "invalid_auth"}, count=1
    )
    settings = load_settings(fakes.environment(SLACK_APP_TOKEN=APP_TOKEN), env_file=None)
    app = create_app(settings)
    try:
        with pytest.raises(ConfigError, match=r"SLACK_APP_TOKEN was refused by Slack \(invalid"):
            await start_socket_mode(build_bolt_app(services_of(app)), APP_TOKEN)
    finally:
        await services_of(app).close()


async def test_an_unreachable_websocket_is_a_configuration_error(fakes: Fakes) -> None:
    fakes.slack.socket_mode_url = "ws://127.0.0.1:9/nothing-listens"
    settings = load_settings(fakes.environment(SLACK_APP_TOKEN=APP_TOKEN), env_file=None)
    app = create_app(settings)
    try:
        with pytest.raises(ConfigError, match="Socket Mode could not connect to Slack"):
            await start_socket_mode(
                build_bolt_app(services_of(app)), APP_TOKEN, ping_interval=0.2, timeout=1.0
            )
    finally:
        await services_of(app).close()
