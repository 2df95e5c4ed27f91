"""End to end through `python -m bot serve` as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

from tests.fakes import FakeGraph, FakeSink, FakeSlack, FakeTelegram, FakeX
from tests.harness import INBOX, SIGNING_SECRET, TELEGRAM_SECRET, base_environment
from tests.signing import slack_headers, telegram_headers

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            deadline = time.monotonic() + 15
            while not slack.roots(INBOX) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
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
