"""End to end through `python -m bot serve` as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
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
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
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


async def test_serve_round_trip_and_graceful_stop(tmp_path: Path) -> None:
    fakes = [
        await f.start() for f in (FakeSlack(), FakeTelegram(), FakeSink(), FakeGraph(), FakeX())
    ]
    slack, telegram = fakes[0], fakes[1]
    assert isinstance(slack, FakeSlack) and isinstance(telegram, FakeTelegram)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TELEGRAM_"))},
        **base_environment(*fakes, f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"),  # type: ignore[arg-type]
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
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
                url + "/webhooks/telegram",
                data=json.dumps(update),
                headers=telegram_headers(TELEGRAM_SECRET),
            ) as response:
                assert response.status == 200
            # (the scheduler may post yesterday's summary elsewhere first)
            await eventually(lambda: bool(slack.roots(INBOX)), "the inbox root")
            root = slack.roots(INBOX)[0]
            reply = slack.add_message(INBOX, "Hi Lin!", user="U0AGENT01", thread_ts=root["ts"])
            body = json.dumps(
                {
                    "type": "event_callback",
                    "event_id": "Ev1",
                    "team_id": "T0001",
                    "event": {
                        "type": "message",
                        "channel": INBOX,
                        "user": "U0AGENT01",
                        "text": "Hi Lin!",
                        "ts": reply["ts"],
                        "thread_ts": root["ts"],
                    },
                }
            ).encode()
            headers = {"Content-Type": "application/json", **slack_headers(body, SIGNING_SECRET)}
            async with session.post(url + "/slack/events", data=body, headers=headers) as response:
                assert response.status == 200
        sent = await telegram.wait_for("sendMessage", timeout=15)
        assert sent[0].params == {"chat_id": 42, "text": "Hi Lin!"}
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
        assert time.monotonic() - started < 10
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for fake in fakes:
            await fake.stop()


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
    session: aiohttp.ClientSession, url: str, slack: FakeSlack, root_ts: str, text: str
) -> None:
    """A person answers in a thread: the message exists in Slack, then the signed event."""
    reply = slack.add_message(INBOX, text, user="U0AGENT01", thread_ts=root_ts)
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
    async with session.post(url + "/slack/events", data=body, headers=headers) as response:
        assert response.status == 200


async def test_serve_round_trips_for_messenger_whatsapp_and_x(tmp_path: Path) -> None:
    """The real payloads in, the team's replies out through the fake Graph and X APIs."""
    fakes = [
        await f.start() for f in (FakeSlack(), FakeTelegram(), FakeSink(), FakeGraph(), FakeX())
    ]
    slack, graph, x = fakes[0], fakes[3], fakes[4]
    assert isinstance(slack, FakeSlack) and isinstance(graph, FakeGraph)
    assert isinstance(x, FakeX)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "META_", "X_"))},
        **base_environment(*fakes, f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"),  # type: ignore[arg-type]
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
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
                    f"{url}/webhooks/{network}", data=body, headers=sign(body, secret)
                ) as response:
                    assert response.status == 200, network
            await eventually(lambda: len(slack.roots(INBOX)) == 3, "three roots")
            roots = slack.roots(INBOX)
            assert len(roots) == 3
            for number, root in enumerate(roots, 1):
                await _reply_in_thread(session, url, slack, root["ts"], f"Answer {number}")
        await eventually(lambda: len(graph.sent) == 2 and bool(x.tweets), "three sends")
        kinds = sorted(item["kind"] for item in graph.sent)
        assert kinds == ["messenger", "whatsapp"]
        assert len(x.tweets) == 1 and x.tweets[0]["in_reply_to_tweet_id"] == "1065035365336141825"
        answers = {x.tweets[0]["text"]} | {
            (item.get("message") or {}).get("text") or (item.get("text") or {}).get("body")
            for item in graph.sent
        }
        assert answers == {"Answer 1", "Answer 2", "Answer 3"}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 15)
        for fake in fakes:
            await fake.stop()
