"""Real `python -m bot serve` processes on one database and one Redis, and what breaks them.

- `RedisServer`: our own redis-server on a spare port (restart and flush it freely; the
  machine's Redis is shared and never touched).
- `TcpProxy`: sits between the bots and PostgreSQL; `down()` refuses and cuts every
  connection (the database is unreachable), `up()` lets them through again.
- `ChaosSlack`: the fake Slack that can hold one process's posts (to kill it mid-call).
- `Cluster`: N serve processes with their logs in files; kill -9, SIGTERM, restart.
- `Load`: customer conversations sent like the networks do (each conversation in order,
  a message retried until it gets a 200), spread round-robin over the live processes.
- `relayed()` / `check_relayed()`: read the fake Slack back and check "one thread per
  conversation, every accepted message exactly once, in order".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from tests.fakes import FakeGraph, FakeSink, FakeSlack, FakeTelegram, FakeX
from tests.fakes.base import Call, call_of
from tests.harness import (
    GENERIC_SECRET,
    SIGNING_SECRET,
    TELEGRAM_SECRET,
    base_environment,
)
from tests.signing import generic_headers, slack_headers, telegram_headers

ROOT = Path(__file__).resolve().parents[2]
LONG = os.environ.get("RELAYDESK_CHAOS", "").lower() == "long"
TELEGRAM_INBOX = "C0TGINBOX1"
GENERIC_INBOX = "C0GNINBOX1"
INBOXES = (TELEGRAM_INBOX, GENERIC_INBOX)
AGENT = "U0AGENT01"
TOKEN_RE = re.compile(r"\b((?:tg|gn)\d{3})-(\d{4})\b")
REPLY_RE = re.compile(r"\breply-((?:tg|gn)\d{3})-(\d+)\b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(log_tail: str) -> bool:
    """`serve` refused to start because its port was in use (its own last sentence)."""
    return log_tail.rstrip().endswith("(another process listens there)")


async def until(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


# -- Redis of our own ----------------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server (no persistence) on a spare port of 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await until(self._answers, 10, f"redis-server on port {self.port}", 0.02)
        return self

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def command(self, *args: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            parts = [f"*{len(args)}\r\n".encode()]
            for arg in args:
                parts.append(f"${len(arg.encode())}\r\n{arg}\r\n".encode())
            writer.write(b"".join(parts))
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()

    async def flush(self) -> None:
        """FLUSHALL on our own server (never the machine's shared Redis)."""
        assert (await self.command("FLUSHALL")).startswith(b"+OK")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


# -- a switchable path to PostgreSQL -----------------------------------------------------


class TcpProxy:
    """Forward 127.0.0.1:<port> to a target; `down()` makes the target unreachable."""

    def __init__(self, target_host: str, target_port: int, latency: float = 0.0) -> None:
        self.port = free_port()
        self.latency = latency  # added to every chunk, each way (a slow network)
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and cut the open ones (like a database host gone)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(sink)
            sink.transport.abort()


# -- fakes -------------------------------------------------------------------------------


class ChaosSlack(FakeSlack):
    """FakeSlack that can hold the chat.postMessage calls made with one token.

    `hold(token)`: a held call is never stored; once released it is answered 503, so a
    process killed while it waits has posted nothing. `hold(token, land=True)`: a slow
    Slack; once released the call is carried out (the message lands) and answered.
    `swallow(token)`: the call is carried out at once (the message lands) but its answer
    never comes back: held until released, then the connection is dropped (`hang=False`:
    dropped at once). From the caller's side, a post that timed out yet succeeded;
    `count`: only that many posts are swallowed, the next ones are answered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held_token: str | None = None
        self.land = False
        self.held: list[str] = []  # texts of the calls held so far
        self.swallowed_token: str | None = None
        self.hang = True
        self.swallow_count: int | None = None
        self.swallowed: list[Call] = []  # the posts that landed unanswered
        self._release = asyncio.Event()

    def hold(self, token: str, *, land: bool = False) -> None:
        self.held_token = token
        self.land = land
        self._release.clear()

    def swallow(self, token: str, *, hang: bool = True, count: int | None = None) -> None:
        self.swallowed_token = token
        self.hang = hang
        self.swallow_count = None if count is None else len(self.swallowed) + count
        self._release.clear()

    def release(self) -> None:
        self.held_token = None
        self.swallowed_token = None
        self._release.set()

    def routes(self) -> list[web.RouteDef]:
        """The Web API through the gate; shared files and upload URLs as FakeSlack has them."""
        api, *files = super().routes()
        return [web.route("*", "/api/{method}", self._gate), *files]

    async def _gate(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if (
            self.held_token is not None
            and token == self.held_token
            and request.match_info["method"] == "chat.postMessage"
        ):
            land = self.land
            self.held.append(str(call_of(request).params.get("text", "")))
            await self._release.wait()
            if not land:
                return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        if (
            self.swallowed_token is not None
            and token == self.swallowed_token
            and request.match_info["method"] == "chat.postMessage"
        ):
            hang = self.hang
            response = await self._handle(request)  # the message lands now
            self.swallowed.append(call_of(request))
            if self.swallow_count is not None and len(self.swallowed) >= self.swallow_count:
                self.swallowed_token = None  # the next posts are answered
            if hang:
                await self._release.wait()
            if request.transport is not None:
                request.transport.abort()  # no answer reaches the caller
            return response
        return await self._handle(request)

    async def stop(self) -> None:
        self.release()
        await super().stop()

    def posts(self, status: int | None = None) -> list[Any]:
        return [
            c for c in self.calls_to("chat.postMessage") if status is None or c.status == status
        ]


class ChaosSink(FakeSink):
    """FakeSink (the generic network's reply URL) that can withhold its answers.

    `hold(prefix)`: a request whose path starts with `prefix` is received at once (the
    customer has the reply) but answered only after `release()`: a sender killed
    meanwhile never learns that its send succeeded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held_prefix: str | None = None
        self.held: list[Call] = []
        self._release = asyncio.Event()

    def hold(self, prefix: str) -> None:
        self.held_prefix = prefix
        self._release.clear()

    def release(self) -> None:
        self.held_prefix = None
        self._release.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.held_prefix is not None and request.path.startswith(self.held_prefix):
            call = call_of(request)
            call.status = 200  # received: what the customer sees
            self.held.append(call)
            await self._release.wait()
        return await super()._handle(request)

    async def stop(self) -> None:
        self.release()
        await super().stop()


@dataclass
class Fakes:
    slack: ChaosSlack
    telegram: FakeTelegram
    sink: ChaosSink
    graph: FakeGraph
    x: FakeX

    @classmethod
    async def start(cls) -> Fakes:
        return cls(
            await ChaosSlack().start(),
            await FakeTelegram().start(),
            await ChaosSink().start(),
            await FakeGraph().start(),
            await FakeX().start(),
        )

    async def stop(self) -> None:
        for fake in (self.slack, self.telegram, self.sink, self.graph, self.x):
            await fake.stop()


# -- serve processes -------------------------------------------------------------------------


@dataclass
class Node:
    index: int
    port: int
    log: Path
    token: str
    process: asyncio.subprocess.Process | None = None
    accepting: bool = False  # the load generator may send to it
    env: dict[str, str] = field(default_factory=dict)  # this node's own settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Cluster:
    """`size` serve processes sharing `database_url` and `redis_url`, on the fakes."""

    def __init__(
        self,
        workdir: Path,
        fakes: Fakes,
        database_url: str,
        redis_url: str | None,
        size: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.fakes = fakes
        self.env = {
            **base_environment(
                fakes.slack, fakes.telegram, fakes.sink, fakes.graph, fakes.x, database_url
            ),
            "SLACK_CHANNEL_TELEGRAM": TELEGRAM_INBOX,
            "SLACK_CHANNEL_GENERIC": GENERIC_INBOX,
            "HOST": "127.0.0.1",
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(workdir)),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **({"REDIS_URL": redis_url} if redis_url else {}),
            **(env or {}),
        }
        self.nodes = [
            Node(i, free_port(), workdir / f"serve-{i}.log", f"xoxb-node-{i}") for i in range(size)
        ]
        self._turn = 0

    async def start(self, *, together: bool = False, timeout: float = 45) -> None:
        """Start every node; by default the first alone (it migrates), then the others."""
        if together:
            for node in self.nodes:
                await self.spawn(node)
            await asyncio.gather(*(self.wait_healthy(node, timeout) for node in self.nodes))
            return
        first, *rest = self.nodes
        await self.spawn(first)
        await self.wait_healthy(first, timeout)
        for node in rest:
            await self.spawn(node)
        await asyncio.gather(*(self.wait_healthy(node, timeout) for node in rest))

    async def spawn(self, node: Node) -> None:
        env = {**self.env, "PORT": str(node.port), "SLACK_BOT_TOKEN": node.token, **node.env}
        with node.log.open("ab") as log:
            log.write(f"--- start {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            node.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def wait_healthy(self, node: Node, timeout: float = 45) -> None:
        async def healthy() -> bool:
            exited = node.process is not None and node.process.returncode is not None
            if exited and port_taken(self.tail(node)):
                # Another test's server took the spare port between its choice and the
                # start: this node moves to a new one (its `url` follows).
                node.port = free_port()
                await self.spawn(node)
            if node.process is None or node.process.returncode is not None:
                code = None if node.process is None else node.process.returncode
                raise AssertionError(f"serve {node.index} exited with {code}:\n{self.tail(node)}")
            return await self.health(node) == 200

        await until(healthy, timeout, f"serve {node.index} to be healthy", 0.1)
        node.accepting = True

    async def health(self, node: Node) -> int | None:
        """`/healthz` status code, None when nothing answers."""
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(
                    node.url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)
                ) as response:
                    await response.read()
                    return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def health_body(self, node: Node) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                node.url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                return dict(await response.json())

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.accepting and node.running]

    def next_node(self) -> Node | None:
        live = self.live()
        if not live:
            return None
        self._turn += 1
        return live[self._turn % len(live)]

    def kill(self, node: Node) -> None:
        node.accepting = False
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)

    def terminate(self, node: Node) -> None:
        node.accepting = False
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)

    def tail(self, node: Node, lines: int = 40) -> str:
        try:
            return "\n".join(node.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def logs(self) -> str:
        return "\n".join(f"== serve {n.index}\n{self.tail(n, 15)}" for n in self.nodes)

    async def close(self) -> None:
        """SIGTERM (so a crashed background task shows in the log), SIGKILL after 10 s."""
        for node in self.nodes:
            node.accepting = False
            if node.running:
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                await asyncio.wait_for(node.process.wait(), 10)
            except TimeoutError:
                node.process.kill()
                await node.process.wait()


# -- SQL from the test's side --------------------------------------------------------------


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


async def pending_count(database_url: str) -> int:
    """Customer messages and replies still waiting to be delivered (read from SQL)."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        messages = await connection.fetchval(
            "SELECT count(*) FROM customer_message WHERE state = 'pending'"
        )
        replies = await connection.fetchval(
            "SELECT count(*) FROM team_reply WHERE state = 'pending'"
        )
        return int(messages) + int(replies)
    finally:
        await connection.close()


async def stored_count(database_url: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM customer_message"))
    finally:
        await connection.close()


# -- the customers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    key: str  # conversation: tg007 or gn008
    seq: int  # 1, 2, ... within the conversation

    @property
    def token(self) -> str:
        return f"{self.key}-{self.seq:04d}"

    @property
    def network(self) -> str:
        return "telegram" if self.key.startswith("tg") else "generic"


def conversation_key(index: int) -> str:
    return f"tg{index:03d}" if index % 2 == 0 else f"gn{index:03d}"


def webhook(message: Message) -> tuple[str, bytes, dict[str, str]]:
    """Path, body and headers of the webhook a network sends for `message`."""
    number = int(message.key[2:])
    text = f"{message.token} hello from {message.key} <!channel>"
    if message.network == "telegram":
        chat_id = 700_000 + number
        body = json.dumps(
            {
                "update_id": number * 100_000 + message.seq,
                "message": {
                    "message_id": message.seq,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private", "first_name": f"Cust {number}"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": f"Cust {number}"},
                    "text": text,
                },
            }
        ).encode()
        return "/webhooks/telegram", body, telegram_headers(TELEGRAM_SECRET)
    body = json.dumps(
        {
            "conversation_id": message.key,
            "message_id": message.token,
            "author": {"id": f"cust-{message.key}", "name": f"Cust {number}"},
            "text": text,
            "sent_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    return "/webhooks/generic", body, generic_headers(body, GENERIC_SECRET)


@dataclass
class Load:
    """`conversations` x `per_conversation` customer messages, like the networks send them.

    A conversation's messages go one after the other (the next once the previous got
    its 200), conversations in parallel, `interval` seconds apart, each request to the
    next live process. A refused or failed request is retried (`retry_pause`) until
    `give_up` seconds after the load started, as the networks do.
    """

    cluster: Cluster
    conversations: int
    per_conversation: int
    interval: float = 0.0
    retry_pause: float = 0.2
    give_up: float = 60.0
    first: int = 0
    accepted: set[Message] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    attempts: dict[Message, list[int]] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [conversation_key(i) for i in range(self.first, self.first + self.conversations)]

    @property
    def messages(self) -> list[Message]:
        return [
            Message(key, seq) for key in self.keys for seq in range(1, self.per_conversation + 1)
        ]

    async def run(self) -> None:
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            await asyncio.gather(*(self._conversation(session, key, started) for key in self.keys))

    async def _conversation(self, session: aiohttp.ClientSession, key: str, started: float) -> None:
        for seq in range(1, self.per_conversation + 1):
            message = Message(key, seq)
            path, body, headers = webhook(message)
            tries = self.attempts.setdefault(message, [])
            while time.monotonic() - started < self.give_up:
                status = await self.send(session, path, body, headers)
                tries.append(status)
                self.statuses[status] += 1
                if status == 200:
                    self.accepted.add(message)
                    break
                await asyncio.sleep(self.retry_pause)
            if self.interval:
                await asyncio.sleep(self.interval)

    async def send(
        self, session: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, str]
    ) -> int:
        """The status answered, 0 when no process answered at all."""
        node = self.cluster.next_node()
        if node is None:
            return 0
        try:
            async with session.post(
                node.url + path,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0


# -- reading Slack back -------------------------------------------------------------------------


@dataclass
class Thread:
    channel: str
    ts: str
    tokens: list[Message]


def relayed(slack: FakeSlack, channels: Iterable[str] = INBOXES) -> dict[str, list[Thread]]:
    """Each conversation key -> the threads its messages were found in (root first)."""
    threads: dict[str, list[Thread]] = {}
    for channel in channels:
        for root in slack.roots(channel):
            texts = [str(m.get("text", "")) for m in slack.thread(channel, root["ts"])]
            tokens = [Message(k, int(s)) for text in texts for k, s in TOKEN_RE.findall(text)]
            if not tokens:
                continue
            thread = Thread(channel, root["ts"], tokens)
            for key in {t.key for t in tokens}:
                threads.setdefault(key, []).append(thread)
    return threads


def seen_tokens(slack: FakeSlack) -> Counter[Message]:
    return Counter(
        Message(k, int(s))
        for channel in INBOXES
        for m in slack.messages(channel)
        for k, s in TOKEN_RE.findall(str(m.get("text", "")))
    )


def posted_by(slack: FakeSlack, token: str) -> list[str]:
    """Which processes (by their Slack token) posted a message containing `token`, and when."""
    first = slack.calls[0].at if slack.calls else 0.0
    return [
        f"{c.headers.get('Authorization', '').removeprefix('Bearer xoxb-')}@{c.at - first:.2f}s"
        for c in slack.calls_to("chat.postMessage")
        if c.status == 200 and token in str(c.params.get("text", ""))
    ]


def check_relayed(slack: FakeSlack, accepted: set[Message], sent: Iterable[Message]) -> None:
    """One thread per conversation; every accepted message exactly once, in order."""
    seen = seen_tokens(slack)
    doubled = sorted(m.token for m, n in seen.items() if n > 1)
    assert not doubled, f"{len(doubled)} messages posted more than once: " + ", ".join(
        f"{token} by {posted_by(slack, token)}" for token in doubled[:10]
    )
    missing = sorted(m.token for m in accepted if m not in seen)
    assert not missing, f"{len(missing)} accepted messages never reached Slack: {missing[:20]}"
    unknown = sorted(m.token for m in set(seen) - set(sent))
    assert not unknown, f"Slack shows messages nobody sent: {unknown[:5]}"
    threads = relayed(slack)
    for key in sorted({m.key for m in accepted}):
        found = threads.get(key, [])
        assert len(found) == 1, f"conversation {key} has {len(found)} threads, expected 1"
        (thread,) = found
        assert {t.key for t in thread.tokens} == {key}, f"thread of {key} mixes conversations"
        order = [t.seq for t in thread.tokens]
        assert order == sorted(order), f"conversation {key} out of order: {order}"
        expected = TELEGRAM_INBOX if key.startswith("tg") else GENERIC_INBOX
        assert thread.channel == expected, f"{key} went to {thread.channel}"


async def wait_relayed(cluster: Cluster, load: Load, database_url: str, timeout: float) -> float:
    """Wait until Slack shows every accepted message and SQL has nothing pending.

    Returns how long it took; a short settle afterwards lets a late duplicate show.
    """
    started = time.monotonic()
    slack = cluster.fakes.slack

    async def done() -> bool:
        seen = seen_tokens(slack)
        if any(m not in seen for m in load.accepted):
            return False
        return await pending_count(database_url) == 0

    try:
        await until(done, timeout, "every accepted message in Slack and nothing pending", 0.25)
    except AssertionError as exc:
        seen = seen_tokens(slack)
        missing = sorted(m.token for m in load.accepted if m not in seen)
        raise AssertionError(
            f"{exc}: {len(missing)} missing, e.g. {missing[:10]}\n{cluster.logs()}"
        ) from None
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # a duplicate still in flight would land now
    return elapsed


# -- replies from Slack ----------------------------------------------------------------------------


def slack_event_body(event: dict[str, Any], event_id: str) -> bytes:
    return json.dumps(
        {
            "token": "verification-token",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": "T0001", "user_id": "UBOT0001", "is_bot": True}],
        }
    ).encode()


async def post_slack_event(
    session: aiohttp.ClientSession, node: Node, body: bytes, retry: int | None = None
) -> int:
    headers = {"Content-Type": "application/json", **slack_headers(body, SIGNING_SECRET)}
    if retry is not None:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    try:
        async with session.post(
            node.url + "/slack/events",
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=15),
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return 0


def delivered_replies(fakes: Fakes) -> Counter[str]:
    """Reply tokens the networks received (Telegram sendMessage, generic reply POSTs)."""
    found: Counter[str] = Counter()
    for message in fakes.telegram.sent:
        found.update(m.group(0) for m in REPLY_RE.finditer(str(message.get("text", ""))))
    for call in fakes.sink.received():
        body = call.json if isinstance(call.json, dict) else {}
        found.update(m.group(0) for m in REPLY_RE.finditer(str(body.get("text", ""))))
    return found


def root_counts(slack: FakeSlack, channels: Iterable[str] = INBOXES) -> Counter[int]:
    """Roots posted per conversation id, read from the posts' own metadata."""
    found: Counter[int] = Counter()
    for channel in channels:
        for root in slack.roots(channel):
            payload = (root.get("metadata") or {}).get("event_payload") or {}
            if payload.get("kind") == "root":
                found[int(payload["conversation_id"])] += 1
    return found


def reply_event(slack: FakeSlack, thread: Thread, text: str, event_id: str) -> bytes:
    """An agent's reply `text` in `thread`: added to the fake Slack, and the event about it."""
    message = slack.add_message(thread.channel, text, user=AGENT, thread_ts=thread.ts)
    event = {
        "type": "message",
        "channel": thread.channel,
        "user": AGENT,
        "text": text,
        "ts": message["ts"],
        "thread_ts": thread.ts,
        "channel_type": "channel",
        "event_ts": message["ts"],
    }
    return slack_event_body(event, event_id)


async def deliver_event(
    session: aiohttp.ClientSession,
    cluster: Cluster,
    body: bytes,
    give_up: float,
    statuses: Counter[int] | None = None,
    retry: int | None = None,
) -> bool:
    """Send a Slack event like Slack does: to a live process, again (marked as a retry)
    until it is answered 200 or `give_up` seconds have passed. True once accepted.
    `retry`: the number of this delivery when Slack already tried it before."""
    deadline = time.monotonic() + give_up
    while time.monotonic() < deadline:
        node = cluster.next_node()
        status = 0 if node is None else await post_slack_event(session, node, body, retry)
        if statuses is not None:
            statuses[status] += 1
        if status == 200:
            return True
        retry = (retry or 0) + 1
        await asyncio.sleep(0.3)
    return False


async def reply_states(database_url: str) -> dict[str, str]:
    """Reply token -> the state SQL holds for that team reply."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch("SELECT text, state FROM team_reply")
    finally:
        await connection.close()
    return {m.group(0): str(row["state"]) for row in rows for m in REPLY_RE.finditer(row["text"])}
