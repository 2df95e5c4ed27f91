"""The whole bot in one test: a real app on fake Slack and fake networks.

Requests are signed exactly as the platforms sign them; assertions read what
reached the fakes and what is in SQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, overload

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Services
from bot.config import Settings, load_settings
from bot.web import create_app, services_of
from storage.models import utcnow
from tests.fakes import FakeGraph, FakeSink, FakeSlack, FakeTelegram, FakeX
from tests.signing import (
    generic_headers,
    slack_command_body,
    slack_form,
    slack_headers,
    telegram_headers,
)

SIGNING_SECRET = "test-signing-secret"
TELEGRAM_SECRET = "tg-secret-123"
GENERIC_SECRET = "generic-secret"
META_SECRET = "meta-app-secret"
X_SECRET = "x-consumer-secret"
INBOX = "C0INBOX01"
SUMMARY = "C0SUMMARY1"  # the daily summary job runs in every test bot: keep it apart
AGENT = "U0AGENT01"

T = TypeVar("T")


def base_environment(
    slack: FakeSlack,
    telegram: FakeTelegram,
    sink: FakeSink,
    graph: FakeGraph,
    x: FakeX,
    database_url: str,
) -> dict[str, str]:
    """Every network on, all pointed at the fakes."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "SLACK_INBOX_CHANNEL": INBOX,
        "SLACK_SUMMARY_CHANNEL": SUMMARY,
        "SLACK_TEAM_CHANNEL_SUPPORT": "C0SUPPORT1",
        "SLACK_TEAM_CHANNEL_SALES": "C0SALES01",
        "TELEGRAM_BOT_TOKEN": "123:tg-token",
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "TELEGRAM_API_URL": telegram.url,
        "GENERIC_WEBHOOK_SECRET": GENERIC_SECRET,
        "GENERIC_REPLY_URL": sink.url + "/replies",
        "META_APP_SECRET": META_SECRET,
        "META_VERIFY_TOKEN": "meta-verify",
        "META_PAGE_TOKEN": "meta-page-token",
        "WHATSAPP_TOKEN": "wa-token",
        "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
        "META_GRAPH_URL": graph.url,
        "X_CONSUMER_SECRET": X_SECRET,
        "X_BEARER_TOKEN": "x-bearer",
        "X_API_URL": x.url,
        "SWEEP_SECONDS": "1",
    }


@overload
async def until(
    check: Callable[[], Awaitable[T | None]], timeout: float = ..., what: str = ...
) -> T: ...


@overload
async def until(check: Callable[[], T | None], timeout: float = ..., what: str = ...) -> T: ...


async def until(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "condition",
) -> T:
    """Wait for an event rather than for a while: poll `check` (awaited if async) until it
    returns something truthy, and return that; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Bot:
    client: TestClient[web.Request, web.Application]
    slack: FakeSlack
    telegram: FakeTelegram
    sink: FakeSink
    graph: FakeGraph
    x: FakeX
    settings: Settings
    _ids: dict[str, int] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return services_of(self.client.app)

    def next_id(self, name: str) -> int:
        self._ids[name] = self._ids.get(name, 0) + 1
        return self._ids[name]

    # -- inbound requests, signed like the platforms do --------------------
    async def from_telegram(
        self,
        chat_id: int,
        text: str,
        *,
        first_name: str = "Ada",
        username: str | None = "ada",
        message_id: int | None = None,
        date: int | None = None,
        update_id: int | None = None,
    ) -> ClientResponse:
        update = {
            "update_id": update_id or self.next_id("update"),
            "message": {
                "message_id": message_id or self.next_id(f"tg:{chat_id}"),
                "date": date or int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": first_name},
                "from": {
                    "id": chat_id,
                    "is_bot": False,
                    "first_name": first_name,
                    **({"username": username} if username else {}),
                },
                "text": text,
            },
        }
        return await self.post_raw(
            "/webhooks/telegram", json.dumps(update).encode(), telegram_headers(TELEGRAM_SECRET)
        )

    async def from_generic(
        self, conversation_id: str, message_id: str, text: str, sent_at: datetime | None = None
    ) -> ClientResponse:
        body = json.dumps(
            {
                "conversation_id": conversation_id,
                "message_id": message_id,
                "author": {"id": f"cust-{conversation_id}", "name": "Grace"},
                "text": text,
                "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
            }
        ).encode()
        return await self.post_raw("/webhooks/generic", body, generic_headers(body, GENERIC_SECRET))

    async def post_raw(self, path: str, body: bytes, headers: Mapping[str, str]) -> ClientResponse:
        return await self.client.post(
            path, data=body, headers={"Content-Type": "application/json", **headers}
        )

    async def slack_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry: int | None = None,
        timestamp: int | None = None,
    ) -> ClientResponse:
        envelope = {
            "token": "verification-token",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{self.next_id('event'):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0001", "user_id": "UBOT0001", "is_bot": True}],
        }
        body = json.dumps(envelope).encode()
        headers = {
            "Content-Type": "application/json",
            **slack_headers(body, SIGNING_SECRET, timestamp),
        }
        if retry is not None:
            headers.update(
                {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            )
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def thread_reply(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        *,
        user: str = AGENT,
        **extra: Any,
    ) -> tuple[ClientResponse, str]:
        """A person writes in a thread: the message exists in Slack, then the event comes."""
        ts = self.slack.add_message(channel, text, user=user, thread_ts=thread_ts)["ts"]
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "parent_user_id": "UBOT0001",
            "channel_type": "channel",
            "event_ts": ts,
            **extra,
        }
        return await self.slack_event(event), ts

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = AGENT,
        channel: str = INBOX,
        message_ts: str = "1.0",
        thread_ts: str | None = None,
    ) -> ClientResponse:
        """`thread_ts`: the button is on a message in that thread (not on a root)."""
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": "agent", "team_id": "T0001"},
            "api_app_id": "A0001",
            "token": "verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
                **({"thread_ts": thread_ts} if thread_ts else {}),
            },
            "trigger_id": "1.2.3",
            "team": {"id": "T0001", "domain": "example"},
            "channel": {"id": channel, "name": "inbox"},
            "message": {"type": "message", "ts": message_ts, "text": "root"},
            "response_url": "https://hooks.slack.com/actions/T0001/1/fake",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "relaydesk.root",
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = slack_form(payload)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_headers(body, SIGNING_SECRET),
        }
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def interact(self, payload: dict[str, Any]) -> ClientResponse:
        """Any interactivity payload (block_actions, message_action, view_submission)."""
        body = slack_form(payload)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_headers(body, SIGNING_SECRET),
        }
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def command(
        self, name: str, text: str = "", *, user: str = AGENT, channel: str = INBOX
    ) -> ClientResponse:
        body = slack_command_body(command=name, text=text, user_id=user, channel_id=channel)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_headers(body, SIGNING_SECRET),
        }
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def command_text(self, line: str, **kwargs: Any) -> str:
        """The ephemeral answer Slack would show for a typed line like `/handoff sales #1`."""
        name, _, text = line.partition(" ")
        response = await self.command(name, text, **kwargs)
        assert response.status == 200, await response.text()
        raw = await response.text()
        return str(json.loads(raw).get("text", "")) if raw.startswith("{") else raw

    def ephemerals_for(self, user: str = AGENT) -> list[str]:
        return [str(e.get("text", "")) for e in self.slack.ephemerals() if e.get("user") == user]

    # -- waiting -----------------------------------------------------------
    @overload
    async def until(
        self, check: Callable[[], Awaitable[T | None]], timeout: float = ..., what: str = ...
    ) -> T: ...

    @overload
    async def until(
        self, check: Callable[[], T | None], timeout: float = ..., what: str = ...
    ) -> T: ...

    async def until(
        self,
        check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
        timeout: float = 5.0,
        what: str = "condition",
    ) -> T:
        return await until(check, timeout, what)

    async def root(self, channel: str = INBOX, index: int = 0) -> dict[str, Any]:
        """A conversation root as a person finds it: posted, and known to the bot in SQL
        (the bot records a root after Slack answers; a person is never that quick)."""
        roots = await self.until(
            lambda: self.slack.roots(channel) if len(self.slack.roots(channel)) > index else None,
            what=f"root #{index} in {channel}",
        )
        ts = roots[index]["ts"]
        await self.until(
            lambda: self.services.repo.conversation_by_thread(channel, ts),
            what=f"root #{index} in {channel} recorded in SQL",
        )
        return roots[index]


async def start_bot(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    coordination_prefix: str = "relaydesk:",
    timers: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[Bot, Callable[[], Awaitable[None]]]:
    slack = await FakeSlack().start()
    telegram = await FakeTelegram().start()
    sink = await FakeSink().start()
    graph = await FakeGraph().start()
    x = await FakeX().start()
    environment = base_environment(
        slack,
        telegram,
        sink,
        graph,
        x,
        database_url or f"sqlite+aiosqlite:///{tmp_path / 'relaydesk.db'}",
    )
    environment.update(env or {})
    settings = load_settings(environment, env_file=None)
    client = TestClient(
        TestServer(
            create_app(
                settings, clock=clock, coordination_prefix=coordination_prefix, run_timers=timers
            )
        )
    )
    await client.start_server()
    bot = Bot(client, slack, telegram, sink, graph, x, settings)

    async def stop() -> None:
        await client.close()
        for fake in (slack, telegram, sink, graph, x):
            await fake.stop()

    return bot, stop
