"""End to end through `python -m bot serve` as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.fakes import FakeGraph, FakeSink, FakeSlack, FakeTelegram, FakeX
from tests.harness import (
    INBOX,
    META_SECRET,
    SIGNING_SECRET,
    TELEGRAM_SECRET,
    X_SECRET,
    base_environment,
)
from tests.refs import ref_bytes, ref_json
from tests.signing import meta_headers, slack_headers, telegram_headers, x_headers

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    # Start-up is imports and migrations: seconds on a quiet machine, more on a loaded one.
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"serve exited early with {process.returncode}")
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("serve did not become healthy")


@dataclass
class Served:
    """`python -m bot serve` as a subprocess, with every fake it talks to."""

    process: asyncio.subprocess.Process
    url: str
    slack: FakeSlack
    telegram: FakeTelegram
    graph: FakeGraph
    x: FakeX
    database: Path

    async def thread_recorded(self, channel: str, ts: str) -> None:
        """Serve records a root in SQL once Slack has answered; a person is never quicker."""

        def known() -> bool:
            with sqlite3.connect(self.database) as connection:
                query = "SELECT 1 FROM slack_thread WHERE channel = ? AND thread_ts = ?"
                return connection.execute(query, (channel, ts)).fetchone() is not None

        await eventually(known, f"root {ts} recorded in SQL")


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    slack, telegram, sink = FakeSlack(), FakeTelegram(), FakeSink()
    graph, x = FakeGraph(), FakeX()
    fakes = [slack, telegram, sink, graph, x]
    for fake in fakes:
        await fake.start()
    port = free_port()
    database = tmp_path / "serve.db"
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        **base_environment(slack, telegram, sink, graph, x, f"sqlite+aiosqlite:///{database}"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield Served(process, url, slack, telegram, graph, x, database)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for fake in fakes:
            await fake.stop()


async def test_serve_round_trip_and_graceful_stop(tmp_path: Path) -> None:
    async with served(tmp_path) as serve:
        update = {
            "update_id": 1,
            "message": {
                "message_id": 10,
                "date": int(time.time()),
                "chat": {"id": 42, "type": "private", "first_name": "Lin"},
                "from": {"id": 42, "is_bot": False, "first_name": "Lin"},
                "text": "Hello?",
            },
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(
                serve.url + "/webhooks/telegram",
                data=json.dumps(update),
                headers=telegram_headers(TELEGRAM_SECRET),
            ) as response:
                assert response.status == 200
            # (the scheduler may post yesterday's summary elsewhere first)
            await eventually(lambda: bool(serve.slack.roots(INBOX)), "the inbox root")
            root = serve.slack.roots(INBOX)[0]
            await _reply_in_thread(session, serve, root["ts"], "Hi Lin!")
        sent = await serve.telegram.wait_for("sendMessage", timeout=15)
        assert sent[0].params == {"chat_id": 42, "text": "Hi Lin!"}
        started = time.monotonic()
        serve.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.process.wait(), 10)
        assert time.monotonic() - started < 10
        assert serve.process.returncode == 0


async def test_configuration_mistakes_exit_2_with_one_sentence(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "SLACK_INBOX_CHANNEL": "#support",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    message = err.decode().strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert "SLACK_INBOX_CHANNEL" in message and "channel ID" in message


async def test_summary_command_posts_on_demand(tmp_path: Path) -> None:
    slack = await FakeSlack().start()
    try:
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_INBOX_CHANNEL": INBOX,
            "SLACK_SUMMARY_CHANNEL": "C0SUMMARY1",
            "SLACK_API_URL": slack.url,
            "TIMEZONE": "Europe/Berlin",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'summary.db'}",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "summary",
            "--date",
            "2026-03-29",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "summary posted to C0SUMMARY1" in out.decode()
        posts = slack.messages("C0SUMMARY1")
        assert len(posts) == 1 and "2026-03-29" in posts[0]["text"]

        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "summary",
            "--date",
            "yesterday",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(bad.communicate(), 60)
        assert bad.returncode == 2 and "--date must look like" in err.decode()
    finally:
        await slack.stop()


async def _reply_in_thread(
    session: aiohttp.ClientSession, serve: Served, root_ts: str, text: str
) -> None:
    """A person answers in a thread: the message exists in Slack, then the signed event."""
    await serve.thread_recorded(INBOX, root_ts)
    reply = serve.slack.add_message(INBOX, text, user="U0AGENT01", thread_ts=root_ts)
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": f"Ev{reply['ts']}",
            "team_id": "T0001",
            "event": {
                "type": "message",
                "channel": INBOX,
                "user": "U0AGENT01",
                "text": text,
                "ts": reply["ts"],
                "thread_ts": root_ts,
            },
        }
    ).encode()
    headers = {"Content-Type": "application/json", **slack_headers(body, SIGNING_SECRET)}
    async with session.post(serve.url + "/slack/events", data=body, headers=headers) as response:
        assert response.status == 200


async def test_serve_round_trips_for_messenger_whatsapp_and_x(tmp_path: Path) -> None:
    """The real payloads in, the team's replies out through the fake Graph and X APIs."""
    async with served(tmp_path) as serve:
        slack, graph, x = serve.slack, serve.graph, serve.x
        inbound = [
            ("meta", ref_bytes("social/messenger_message.json"), META_SECRET, meta_headers),
            ("whatsapp", ref_bytes("social/whatsapp_text.json"), META_SECRET, meta_headers),
            (
                "x",
                json.dumps(ref_json("social/twitter_mention.json")["params"]).encode(),
                X_SECRET,
                x_headers,
            ),
        ]
        async with aiohttp.ClientSession() as session:
            for network, body, secret, sign in inbound:
                async with session.post(
                    f"{serve.url}/webhooks/{network}", data=body, headers=sign(body, secret)
                ) as response:
                    assert response.status == 200, network
            await eventually(lambda: len(slack.roots(INBOX)) == 3, "three roots")
            for number, root in enumerate(slack.roots(INBOX), 1):
                await _reply_in_thread(session, serve, root["ts"], f"Answer {number}")
        await eventually(lambda: len(graph.sent) == 2 and bool(x.tweets), "three sends")
        assert sorted(item["kind"] for item in graph.sent) == ["messenger", "whatsapp"]
        assert len(x.tweets) == 1 and x.tweets[0]["in_reply_to_tweet_id"] == "1065035365336141825"
        answers = {x.tweets[0]["text"]} | {
            (item.get("message") or {}).get("text") or (item.get("text") or {}).get("body")
            for item in graph.sent
        }
        assert answers == {"Answer 1", "Answer 2", "Answer 3"}
