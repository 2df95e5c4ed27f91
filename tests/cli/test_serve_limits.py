"""Slow clients cannot exhaust `serve` (bot/serving.py).

`python -m bot serve` runs as a subprocess limited to 1,024 descriptors; the test
opens 3,000 connections that send half a request head and then nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from bot.serving import BODY_SECONDS, HEADER_SECONDS
from tests.cli.conftest import Fakes
from tests.harness import TELEGRAM_SECRET
from tests.integration.test_serve import free_port, wait_healthy
from tests.signing import telegram_headers

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTORS = 1_024
FLOOD = 3_000
HALF_HEAD = b"POST /webhooks/telegram HTTP/1.1\r\nHost: relaydesk\r\nContent-Ty"
SLOW_BODY = (
    b"POST /webhooks/telegram HTTP/1.1\r\nHost: relaydesk\r\n"
    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"update_id":'
)


def _limit_descriptors() -> None:
    """Runs in the serve child before exec."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, hard))


@pytest.fixture
def room_for_the_flood() -> Iterator[None]:
    """This process holds every client socket of the flood."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = FLOOD + 1_000
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the test needs {needed} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@asynccontextmanager
async def serve_limited(fakes: Fakes) -> AsyncIterator[tuple[str, int, int]]:
    """(base URL, port, pid) of a running `serve` under the descriptor limit."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        **fakes.environment(HOST="127.0.0.1", PORT=str(port)),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", cwd=fakes.tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=_limit_descriptors,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url, process)
        yield url, port, process.pid
    finally:
        process.kill()
        await process.wait()


def open_clients(port: int, count: int, head: bytes) -> list[socket.socket]:
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            clients.append(client)
            try:
                client.sendall(head)
            except OSError:
                pass  # already closed by the server, to make room
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(clients: list[socket.socket]) -> None:
    for client in clients:
        client.close()


def closed(client: socket.socket, answers: dict[socket.socket, bytes]) -> bool:
    """Whether the server closed `client`; what it sent is added to `answers`."""
    client.setblocking(False)
    try:
        while chunk := client.recv(65536):
            answers[client] = answers.get(client, b"") + chunk
    except BlockingIOError:
        return False
    except ConnectionResetError:
        pass
    return True


def still_open(clients: list[socket.socket], answers: dict[socket.socket, bytes]) -> int:
    return sum(not closed(client, answers) for client in clients)


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def answered_within(seconds: float, session: aiohttp.ClientSession, url: str) -> float:
    """Seconds /healthz and a Telegram webhook took, both answered 200."""
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with session.get(url + "/healthz", timeout=timeout) as response:
        assert response.status == 200, await response.text()
    update = {
        "update_id": 7,
        "message": {
            "message_id": 70,
            "date": int(time.time()),
            "chat": {"id": 77, "type": "private", "first_name": "Ana"},
            "from": {"id": 77, "is_bot": False, "first_name": "Ana"},
            "text": "still there?",
        },
    }
    async with session.post(
        url + "/webhooks/telegram",
        data=json.dumps(update),
        headers=telegram_headers(TELEGRAM_SECRET),
        timeout=timeout,
    ) as response:
        assert response.status == 200, await response.text()
    return time.monotonic() - started


async def wait_closed(
    clients: list[socket.socket], answers: dict[socket.socket, bytes], since: float, seconds: float
) -> float:
    """Seconds from `since` until the server closed every one of `clients`."""
    while left := still_open(clients, answers):
        assert time.monotonic() - since < seconds, f"{left} still open"
        await asyncio.sleep(0.25)
    return time.monotonic() - since


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.usefixtures("room_for_the_flood")
async def test_half_sent_requests_do_not_exhaust_serve(fakes: Fakes) -> None:
    async with serve_limited(fakes) as (url, port, pid), aiohttp.ClientSession() as session:
        before = descriptors(pid)
        started = time.monotonic()
        flood = await asyncio.to_thread(open_clients, port, FLOOD, HALF_HEAD)
        slow: list[socket.socket] = []
        answers: dict[socket.socket, bytes] = {}
        try:
            opened = time.monotonic() - started
            during = descriptors(pid)
            open_after_flood = still_open(flood, answers)
            took = await answered_within(5, session, url)
            slow = await asyncio.to_thread(open_clients, port, 3, SLOW_BODY)
            slow_sent = time.monotonic()
            closed_in = await wait_closed(flood, answers, started + opened, HEADER_SECONDS + 5)
            body_closed_in = await wait_closed(slow, answers, slow_sent, BODY_SECONDS + 5)
            after = descriptors(pid)
            print(
                f"\nflood of {FLOOD} opened in {opened:.1f} s; serve descriptors "
                f"{before} before, {during} during, {after} after; {open_after_flood} "
                f"still open after the flood; healthz + webhook in {took:.2f} s; "
                f"rest closed {closed_in:.1f} s after the flood; slow bodies answered in "
                f"{body_closed_in:.1f} s"
            )
        finally:
            close_all(flood + slow)
    assert during < DESCRIPTORS - 100
    assert open_after_flood < DESCRIPTORS  # the oldest were closed to make room
    assert closed_in > HEADER_SECONDS - 3  # closed by the head deadline, not at once
    assert body_closed_in > BODY_SECONDS - 3
    assert not any(answers.get(client) for client in flood)  # closed without a word
    assert all(answers[client].startswith(b"HTTP/1.1 408") for client in slow), answers
    assert after < before + 20
