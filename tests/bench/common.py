"""What the benchmarks share: an open-loop load generator, percentiles, tables, setups.

Everything listens on 127.0.0.1; every load is bounded in rate and duration.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.chaos.cluster import Cluster, Fakes, RedisServer, asyncpg_dsn
from tests.harness import TELEGRAM_SECRET
from tests.pg import fresh_postgres
from tests.signing import telegram_headers

Request = tuple[str, bytes, dict[str, str], str]  # path, body, headers, stored external id


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# -- the webhooks ----------------------------------------------------------------------------


class TelegramUpdates:
    """Unique, correctly signed Telegram updates spread over `conversations` chats."""

    def __init__(self, conversations: int = 1000, first_chat: int = 10_000) -> None:
        self.conversations = conversations
        self.first_chat = first_chat
        self.count = 0

    def next(self) -> Request:
        self.count += 1
        n = self.count
        chat = self.first_chat + n % self.conversations
        body = json.dumps(
            {
                "update_id": n,
                "message": {
                    "message_id": n,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": f"Bench {chat}"},
                    "from": {"id": chat, "is_bot": False, "first_name": f"Bench {chat}"},
                    "text": f"bench message {n}",
                },
            }
        ).encode()
        return "/webhooks/telegram", body, telegram_headers(TELEGRAM_SECRET), f"{chat}:{n}"


# -- open-loop load ----------------------------------------------------------------------------


@dataclass
class Step:
    rate: int
    duration: float
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of the 200s
    accepted_ids: list[str] = field(default_factory=list)  # external ids answered 200
    elapsed: float = 0.0  # first send to last answer
    skipped: int = 0  # not sent: the generator's in-flight cap was reached

    @property
    def accepted(self) -> int:
        return self.statuses[200]

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / max(self.elapsed, self.duration)


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a request, read its status and body.

    The generator shares the 2 cores with what it measures, so it stays lean: a
    request is pre-encoded bytes and the answer is read just far enough for its
    status (aiohttp's client costs about as much CPU per request as the bare server).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end]).lower()
        marker = head.find(b"content-length:")
        length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class _Pool:
    """Idle keep-alive connections per (host, port); a request takes one or opens one."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int], list[_Exchange]] = {}
        self.all: list[_Exchange] = []

    async def warm(self, host: str, port: int, count: int) -> None:
        """Open `count` connections now: a network keeps its connections to a webhook open,
        so a step measures answers, not a burst of TCP handshakes at its start."""
        loop = asyncio.get_running_loop()
        opened = await asyncio.gather(
            *(loop.create_connection(_Exchange, host, port) for _ in range(count))
        )
        for _, connection in opened:
            self.all.append(connection)
            self.idle.setdefault((host, port), []).append(connection)

    async def send(self, host: str, port: int, request: bytes) -> int:
        idle = self.idle.setdefault((host, port), [])
        if idle:
            connection = idle.pop()
        else:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Exchange, host, port
            )
            self.all.append(connection)
        try:
            status = await connection.exchange(request)
        except BaseException:
            if connection.transport is not None:
                connection.transport.close()
            raise
        idle.append(connection)
        return status

    def close(self) -> None:
        for connection in self.all:
            if connection.transport is not None:
                connection.transport.close()


def _encode(host: str, port: int, request: Request) -> bytes:
    path, body, headers, _ = request
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    urls: Sequence[str],
    rate: int,
    duration: float,
    make: Callable[[], Request],
    *,
    max_in_flight: int = 2000,
    timeout: float = 10.0,
) -> Step:
    """Send `rate` requests/s for `duration` s on schedule, whatever the answers take.

    Latency is measured from each request's scheduled time (no coordinated omission),
    requests go round-robin over `urls`. The requests are built before the clock starts,
    and the generator's own garbage collector is off while it sends: a full collection
    over its thousands of prepared requests paused it for 60-80 ms mid-step, which
    showed up as server latency.
    """
    step = Step(rate, duration)
    total = int(rate * duration)
    targets = [_host_port(url) for url in urls]
    requests = [make() for _ in range(total)]
    encoded = [_encode(*targets[i % len(targets)], request) for i, request in enumerate(requests)]
    loop = asyncio.get_running_loop()
    in_flight: set[asyncio.Task[None]] = set()
    pool = _Pool()
    started = loop.time()

    async def one(index: int, scheduled: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                status = await pool.send(*targets[index % len(targets)], encoded[index])
        except (TimeoutError, OSError, ValueError):
            status = 0
        step.statuses[status] += 1
        if status == 200:
            step.latencies.append(loop.time() - scheduled)
            step.accepted_ids.append(requests[index][3])

    collecting = gc.isenabled()
    try:
        for target in set(targets):
            # about the connections in use at a 40 ms answer time
            await pool.warm(*target, max(4, rate // 25 // len(targets)))
        gc.collect()
        gc.disable()
        started = loop.time()
        while step.sent + step.skipped < total:
            due = min(total, int((loop.time() - started) * rate) + 1)
            while step.sent + step.skipped < due:
                index = step.sent + step.skipped
                if len(in_flight) >= max_in_flight:
                    step.skipped += 1
                    continue
                task = asyncio.create_task(one(index, started + index / rate))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                step.sent += 1
            next_at = started + (step.sent + step.skipped) / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if in_flight:
            await asyncio.wait(in_flight)
    finally:
        if collecting:
            gc.enable()
        pool.close()
    step.elapsed = loop.time() - started
    return step


@dataclass
class Saturation:
    """A closed-loop run: what was answered, and the CPU it cost."""

    connections: int
    duration: float
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of the 200s
    accepted_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float = 0.0  # seconds of user + system time of the measured processes
    generator_cpu: float = 0.0  # seconds of this process's own CPU

    @property
    def accepted(self) -> int:
        return self.statuses[200]

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else math.nan

    def cpu_us_per_request(self, cpu: float) -> float:
        return cpu * 1e6 / self.accepted if self.accepted else math.nan


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of processes and their waited-for children (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / ticks


async def closed_loop(
    urls: Sequence[str],
    connections: int,
    duration: float,
    make: Callable[[], Request],
    *,
    pids: Sequence[int] = (),
    prepared: int = 100_000,
    timeout: float = 10.0,
) -> Saturation:
    """Saturation: `connections` keep-alive connections (spread over `urls`), each sending
    its next fresh request as soon as the last is answered, for `duration` s.

    `prepared` requests are built before the clock starts (building them would cost the
    generator CPU the servers share); a run that uses them up ends early and counts its
    own elapsed time. The CPU of `pids` over the run is measured from /proc.
    """
    run = Saturation(connections, duration)
    targets = [_host_port(url) for url in urls]
    ids: list[str] = []
    encoded: list[bytes] = []
    for i in range(prepared):
        request = make()
        ids.append(request[3])
        encoded.append(_encode(*targets[i % len(targets)], request))
    loop = asyncio.get_running_loop()
    pools = []
    for i in range(connections):
        pool = _Pool()
        await pool.warm(*targets[i % len(targets)], 1)
        pools.append((i % len(targets), pool.all[0], pool))
    # Connection i serves the requests encoded for its target: i % len(targets) == index.
    queues = [iter(range(t, prepared, len(targets))) for t in range(len(targets))]
    deadline = 0.0

    async def worker(target: int, connection: _Exchange) -> None:
        for index in queues[target]:
            if loop.time() >= deadline:
                return
            began = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    status = await connection.exchange(encoded[index])
            except (TimeoutError, OSError, ValueError):
                run.statuses[0] += 1
                return  # the connection is in an unknown state
            run.sent += 1
            run.statuses[status] += 1
            if status == 200:
                run.latencies.append(loop.time() - began)
                run.accepted_ids.append(ids[index])

    collecting = gc.isenabled()
    try:
        gc.collect()
        gc.disable()
        cpu_before, own_before = cpu_seconds(pids), time.process_time()
        started = loop.time()
        deadline = started + duration
        await asyncio.gather(*(worker(target, c) for target, c, _ in pools))
        run.elapsed = loop.time() - started
        run.server_cpu = cpu_seconds(pids) - cpu_before
        run.generator_cpu = time.process_time() - own_before
    finally:
        if collecting:
            gc.enable()
        for _, _, pool in pools:
            pool.close()
    return run


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


# -- what runs -------------------------------------------------------------------------------


@dataclass
class Setup:
    """Serve processes on the fakes, and how to count the rows they stored."""

    name: str
    cluster: Cluster
    fakes: Fakes
    database_url: str

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.cluster.nodes]

    async def stored(self) -> int:
        return len(await self.stored_ids())

    async def stored_ids(self) -> set[str]:
        """The network ids of every customer message in SQL."""
        query = "SELECT external_id FROM customer_message"
        if self.database_url.startswith("sqlite"):
            path = self.database_url.split("///", 1)[1]
            with sqlite3.connect(path) as connection:
                return {row[0] for row in connection.execute(query)}
        connection = await asyncpg.connect(asyncpg_dsn(self.database_url))
        try:
            return {row[0] for row in await connection.fetch(query)}
        finally:
            await connection.close()

    def pids(self) -> list[int]:
        return [n.process.pid for n in self.cluster.nodes if n.process is not None]


@asynccontextmanager
async def sqlite_setup(workdir: Path, env: dict[str, str] | None = None) -> AsyncIterator[Setup]:
    """One serve process on SQLite, coordination in memory."""
    fakes = await Fakes.start()
    database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    cluster = Cluster(workdir, fakes, database_url, None, 1, env)
    try:
        await cluster.start()
        yield Setup("SQLite, 1 process", cluster, fakes, database_url)
    finally:
        await cluster.close()
        await fakes.stop()


@asynccontextmanager
async def postgres_setup(
    workdir: Path, processes: int = 2, env: dict[str, str] | None = None
) -> AsyncIterator[Setup]:
    """`processes` serve processes on a fresh PostgreSQL database and our own redis-server."""
    fakes = await Fakes.start()
    redis = await RedisServer(workdir / "redis").start()
    try:
        async with fresh_postgres() as database_url:
            cluster = Cluster(workdir, fakes, database_url, redis.url, processes, env)
            try:
                await cluster.start()
                yield Setup(
                    f"PostgreSQL + Redis, {processes} processes", cluster, fakes, database_url
                )
            finally:
                await cluster.close()
    finally:
        await redis.stop()
        await fakes.stop()


def postgres_available() -> bool:
    return reachable("127.0.0.1", 5432)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan
