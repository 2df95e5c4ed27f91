"""`Coordinator` on Redis, shared by every process of a deployment.

Commands raise `CoordinationUnavailable` when Redis cannot be reached. Waiters are the
exception: they keep one pub/sub connection per coordinator open and reconnect by
themselves, because a wake-up is only a hint (callers re-check SQL after every wake-up
and after every timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Iterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.coordination import (
    DEFAULT_PREFIX,
    CoordinationUnavailable,
    Lease,
    Waiter,
    gcra_params,
    validate_ttl,
)

logger = logging.getLogger(__name__)

# What a lost or refused connection looks like; anything else is a bug and propagates.
# (redis-py wraps most socket errors, but OSError can still escape from connect/close.)
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

_LOCK_POLL_MIN = 0.01
_LOCK_POLL_MAX = 0.1
_RECONNECT_MIN = 0.1
_RECONNECT_MAX = 5.0

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# GCRA on the server's clock, in integer microseconds (exact in Lua's doubles).
# KEYS: the rate state, the pause. ARGV: emission interval, burst tolerance.
# Returns the wait; the slot is taken either way. A pause (the instant it ends) holds
# every slot back until then, and no burst follows it.
_RESERVE = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then
    tat = now
end
local pause_ends = tonumber(redis.call('GET', KEYS[2]) or 0)
if pause_ends > now and tat < pause_ends + tolerance then
    tat = pause_ends + tolerance
end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', ttl_ms))
local wait = tat - tolerance - now
if wait < 0 then
    wait = 0
end
return wait
"""


# The pause's end instant (server clock, microseconds), extended but never shortened.
# ARGV: the pause in microseconds.
_PAUSE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local ends = now + tonumber(ARGV[1])
if ends > tonumber(redis.call('GET', KEYS[1]) or 0) then
    redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', math.ceil(tonumber(ARGV[1]) / 1000))
end
return 0
"""

# Microseconds left of the pause (0: none).
_PAUSED = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local left = tonumber(redis.call('GET', KEYS[1]) or 0) - now
if left < 0 then
    left = 0
end
return left
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class _RedisWaiter:
    def __init__(self, hub: _PubSubHub, channel: str) -> None:
        self._hub = hub
        self._channel = channel
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        self._hub.raise_if_failed()
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                # Not subscribed (yet, or any more): a publish may have gone unheard.
                return not self._hub.listening(self._channel)
        self._event.clear()
        return True

    async def close(self) -> None:
        self._hub.remove(self._channel, self)


class _PubSubHub:
    """One pub/sub connection per coordinator, shared by all of its waiters.

    A reader task owns the connection: it connects (again, with backoff, after any
    failure), subscribes every channel that has waiters and wakes them on messages.
    Every subscription confirmation also wakes that channel's waiters, because whatever
    was published before it is lost: a spurious wake-up is cheap, a lost one is not.
    """

    def __init__(self, client: Redis, health_check_interval: float) -> None:
        self._client = client
        self._health_check_interval = health_check_interval
        self._waiters: dict[str, set[_RedisWaiter]] = {}
        self._pubsub: PubSub | None = None
        self._sent: set[str] = set()  # SUBSCRIBE sent on the current connection
        self._confirmed: set[str] = set()  # ... and confirmed by the server
        self._sync_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._syncs: set[asyncio.Task[None]] = set()
        self._answered = False  # the current connection has delivered something
        self._closed = False

    def add(self, channel: str) -> _RedisWaiter:
        if self._closed:
            raise RuntimeError("waiter() called on a closed RedisCoordinator")
        self.raise_if_failed()
        waiter = _RedisWaiter(self, channel)
        self._waiters.setdefault(channel, set()).add(waiter)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(
                self._run(), name="relaydesk-redis-pubsub"
            )
        else:
            self._schedule_sync()
        return waiter

    def remove(self, channel: str, waiter: _RedisWaiter) -> None:
        waiters = self._waiters.get(channel)
        if waiters is None or waiter not in waiters:
            return
        waiters.discard(waiter)
        if not waiters:
            del self._waiters[channel]
            self._schedule_sync()

    def listening(self, channel: str) -> bool:
        return channel in self._confirmed

    def raise_if_failed(self) -> None:
        """Surface an unexpected crash of the reader instead of degrading silently."""
        reader = self._reader
        if reader is not None and reader.done() and not reader.cancelled():
            error = reader.exception()
            if error is not None:
                raise CoordinationUnavailable("Redis pub/sub reader crashed") from error

    def _schedule_sync(self) -> None:
        if self._pubsub is None:
            return  # the reader subscribes every wanted channel once it is connected
        task = asyncio.get_running_loop().create_task(self._sync_in_background())
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def _sync_in_background(self) -> None:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            # On failure the reader hits the same broken connection, reconnects and
            # subscribes every wanted channel afresh.
            await self._sync()

    async def _sync(self) -> None:
        """Bring the connection's subscriptions in line with the channels that have waiters."""
        async with self._sync_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            wanted = set(self._waiters)
            new, gone = wanted - self._sent, self._sent - wanted
            if new:
                self._sent |= new
                await pubsub.subscribe(*new)
            if gone:
                self._sent -= gone
                self._confirmed -= gone
                await pubsub.unsubscribe(*gone)

    async def _run(self) -> None:
        delay = _RECONNECT_MIN
        while True:
            try:
                await self._listen()
            except _CONNECTION_ERRORS as error:
                if self._answered:
                    delay = _RECONNECT_MIN  # the connection worked: retry soon
                logger.warning(
                    "Redis pub/sub connection lost (%s); reconnecting in %.1f s", error, delay
                )
            finally:
                self._pubsub = None
                self._answered = False
                self._sent.clear()
                self._confirmed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.connect()
            self._pubsub = pubsub
            await self._sync()
            # Our own liveness check: PING when idle, give up if nothing answers.
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=self._health_check_interval)
                if message is not None:
                    self._answered = True
                    self._handle(message)
                    pinged = False
                elif pinged:
                    raise RedisTimeoutError("no answer to PING on the pub/sub connection")
                else:
                    await pubsub.ping()
                    pinged = True
        finally:
            await pubsub.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            self._confirmed.add(channel)
        elif kind == "unsubscribe":
            self._confirmed.discard(channel)
            return
        elif kind != "message":
            return  # pong
        for waiter in self._waiters.get(channel, ()):
            waiter.wake()

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._syncs, *([self._reader] if self._reader is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._waiters.clear()


class RedisCoordinator:
    """`Coordinator` for several processes sharing one Redis; keys live under `prefix`."""

    def __init__(
        self,
        client: Redis,
        pubsub_client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        health_check_interval: float = 15.0,
    ) -> None:
        """`pubsub_client` must not retry by itself, so that the hub sees every disconnect."""
        if health_check_interval <= 0:
            raise ValueError(f"health_check_interval must be positive, got {health_check_interval}")
        self._client = client
        self._pubsub_client = pubsub_client
        self._prefix = prefix
        self._hub = _PubSubHub(pubsub_client, health_check_interval)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)
        self._reserve = client.register_script(_RESERVE)
        self._pause = client.register_script(_PAUSE)
        self._paused = client.register_script(_PAUSED)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 3.0,
        health_check_interval: float = 15.0,
        client_name: str = "relaydesk",
    ) -> RedisCoordinator:
        """Commands retry twice, briefly, then raise; pub/sub reconnects in the hub instead.

        `client_name` names the connections in `CLIENT LIST` (`<name>:pubsub` for waiters).
        """
        # A burst waits for a free connection instead of failing "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=100,
            timeout=socket_timeout,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            health_check_interval=health_check_interval,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
            client_name=client_name,
        )
        client = Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
        pubsub_client = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            client_name=f"{client_name}:pubsub",
        )
        return cls(
            client, pubsub_client, prefix=prefix, health_check_interval=health_check_interval
        )

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    @contextlib.contextmanager
    def _reachable(self, operation: str) -> Iterator[None]:
        try:
            yield
        except _CONNECTION_ERRORS as error:
            raise CoordinationUnavailable(f"Redis is unreachable ({operation}): {error}") from error

    async def first_seen(self, key: str, ttl: float) -> bool:
        validate_ttl(ttl)
        with self._reachable(f"first_seen {key!r}"):
            return bool(await self._client.set(self._key("seen", key), 1, nx=True, px=_ms(ttl)))

    async def forget(self, key: str) -> None:
        with self._reachable(f"forget {key!r}"):
            await self._client.delete(self._key("seen", key))

    async def lock(self, key: str, ttl: float, wait: float = 0.0) -> Lease | None:
        """Polls (10 ms doubling to 100 ms) until `wait` runs out; expiry frees the lock too."""
        validate_ttl(ttl)
        name, token = self._key("lock", key), secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        pause = _LOCK_POLL_MIN
        while True:
            with self._reachable(f"lock {key!r}"):
                if await self._client.set(name, token, nx=True, px=_ms(ttl)):
                    return Lease(key, token)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _LOCK_POLL_MAX)

    async def extend(self, lease: Lease, ttl: float) -> bool:
        validate_ttl(ttl)
        with self._reachable(f"extend {lease.key!r}"):
            extended = await self._extend(
                keys=[self._key("lock", lease.key)], args=[lease.token, _ms(ttl)]
            )
        return bool(extended)

    async def release(self, lease: Lease) -> None:
        with self._reachable(f"release {lease.key!r}"):
            await self._release(keys=[self._key("lock", lease.key)], args=[lease.token])

    async def reserve(self, key: str, rate: float, burst: int) -> float:
        interval, tolerance = gcra_params(rate, burst)
        with self._reachable(f"reserve {key!r}"):
            wait_us = await self._reserve(
                keys=[self._key("rate", key), self._key("pause", key)],
                args=[max(1, round(interval * 1e6)), round(tolerance * 1e6)],
            )
        return int(wait_us) / 1e6

    async def pause(self, key: str, seconds: float) -> None:
        validate_ttl(seconds)
        with self._reachable(f"pause {key!r}"):
            await self._pause(keys=[self._key("pause", key)], args=[max(1, round(seconds * 1e6))])

    async def paused(self, key: str) -> float:
        with self._reachable(f"paused {key!r}"):
            left_us = await self._paused(keys=[self._key("pause", key)])
        return int(left_us) / 1e6

    async def publish(self, topic: str) -> None:
        with self._reachable(f"publish {topic!r}"):
            await self._client.publish(self._key("wake", topic), 1)

    def waiter(self, topic: str) -> Waiter:
        return self._hub.add(self._key("wake", topic))

    async def ping(self) -> None:
        with self._reachable("ping"):
            await self._client.ping()

    async def close(self) -> None:
        await self._hub.close()
        await self._client.aclose()
        await self._pubsub_client.aclose()
