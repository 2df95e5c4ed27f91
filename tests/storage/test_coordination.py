"""One contract suite for the coordination port, run against the in-memory twin and Redis.

The memory twin runs on a fake clock, so its TTLs expire without sleeping; Redis runs on
real time, so its TTLs are a few hundred milliseconds. "Two processes" are two
`RedisCoordinator` objects on one Redis (the memory twin serves one process: its peer is
itself). Each Redis test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from storage.coordination import (
    CoordinationUnavailable,
    Coordinator,
    MemoryCoordinator,
    Waiter,
    make_coordinator,
)
from storage.redis_coordination import RedisCoordinator
from tests.services import require_redis


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    coordinator: Coordinator
    peer: Coordinator  # the same state seen from another process
    advance: Callable[[float], Awaitable[None]]  # let TTLs and rate-limit state age


@dataclass
class RedisEnv:
    url: str
    prefix: str
    name: str  # client name of `a`; its pub/sub connection is `<name>:pubsub`
    a: RedisCoordinator
    b: RedisCoordinator


@asynccontextmanager
async def redis_pair() -> AsyncIterator[RedisEnv]:
    url = require_redis()
    run = uuid.uuid4().hex[:12]
    prefix = f"relaydesk-test:{run}:"
    name = f"relaydesk-test-{run}"
    a = RedisCoordinator.from_url(url, prefix=prefix, client_name=f"{name}-a")
    b = RedisCoordinator.from_url(url, prefix=prefix, client_name=f"{name}-b")
    try:
        yield RedisEnv(url, prefix, f"{name}-a", a, b)
    finally:
        await a.close()
        await b.close()
        raw = Redis.from_url(url)
        keys = [key async for key in raw.scan_iter(match=f"{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


@pytest.fixture
async def redis_env() -> AsyncIterator[RedisEnv]:
    async with redis_pair() as pair:
        yield pair


@pytest.fixture(params=["memory", "redis"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    if request.param == "memory":
        clock = FakeClock()
        memory = MemoryCoordinator(clock=clock)
        yield Env(memory, memory, clock.advance)
        await memory.close()
    else:
        async with redis_pair() as pair:
            yield Env(pair.a, pair.b, asyncio.sleep)


async def settled(*waiters: Waiter) -> None:
    """Drain wake-ups already due.

    A new Redis subscription wakes its waiters once, since a publish made before the
    server confirmed it would otherwise be lost; the memory twin has nothing to drain.
    """
    for waiter in waiters:
        for _ in range(40):
            if not await waiter.wait(0.05):
                break
        else:
            pytest.fail("the waiter kept waking up with nothing published")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- first_seen / forget ---


async def test_first_seen_is_true_once(env: Env) -> None:
    assert await env.coordinator.first_seen("msg:1", ttl=60) is True
    assert await env.coordinator.first_seen("msg:1", ttl=60) is False
    assert await env.peer.first_seen("msg:1", ttl=60) is False
    assert await env.peer.first_seen("msg:2", ttl=60) is True


async def test_first_seen_expires_after_ttl(env: Env) -> None:
    assert await env.coordinator.first_seen("msg:1", ttl=0.3)
    await env.advance(0.2)
    assert not await env.coordinator.first_seen("msg:1", ttl=0.3)
    await env.advance(0.2)
    assert await env.peer.first_seen("msg:1", ttl=0.3)


async def test_forget_lets_the_work_be_redone(env: Env) -> None:
    assert await env.coordinator.first_seen("msg:1", ttl=60)
    await env.peer.forget("msg:1")
    assert await env.coordinator.first_seen("msg:1", ttl=60)
    assert not await env.coordinator.first_seen("msg:1", ttl=60)
    await env.coordinator.forget("never-seen")


# --- locks ---


async def test_lock_is_exclusive_until_released(env: Env) -> None:
    lease = await env.coordinator.lock("conv:1", ttl=30)
    assert lease is not None and lease.key == "conv:1"
    assert await env.coordinator.lock("conv:1", ttl=30) is None
    assert await env.peer.lock("conv:1", ttl=30) is None
    assert await env.peer.lock("conv:2", ttl=30) is not None
    await env.coordinator.release(lease)
    again = await env.peer.lock("conv:1", ttl=30)
    assert again is not None and again.token != lease.token


async def test_lock_waits_for_release(env: Env) -> None:
    lease = await env.coordinator.lock("conv:1", ttl=30)
    assert lease is not None
    waiting = asyncio.create_task(env.peer.lock("conv:1", ttl=30, wait=2.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    released_at = time.monotonic()
    await env.coordinator.release(lease)
    taken = await asyncio.wait_for(waiting, 1.0)
    assert taken is not None and taken.token != lease.token
    assert time.monotonic() - released_at < 0.5


async def test_lock_wait_gives_up_when_busy(env: Env) -> None:
    assert await env.coordinator.lock("conv:1", ttl=30) is not None
    started = time.monotonic()
    assert await env.peer.lock("conv:1", ttl=30, wait=0.2) is None
    assert 0.19 <= time.monotonic() - started < 1.0


async def test_lock_expires_after_ttl(env: Env) -> None:
    assert await env.coordinator.lock("conv:1", ttl=0.3) is not None
    await env.advance(0.2)
    assert await env.peer.lock("conv:1", ttl=0.3) is None
    await env.advance(0.2)
    assert await env.peer.lock("conv:1", ttl=0.3) is not None


async def test_lock_wait_ends_when_the_holder_expires(env: Env) -> None:
    assert await env.coordinator.lock("conv:1", ttl=0.3) is not None
    waiting = asyncio.create_task(env.peer.lock("conv:1", ttl=30, wait=2.0))
    await env.advance(0.35)
    assert await asyncio.wait_for(waiting, 1.5) is not None


async def test_extend_keeps_a_held_lease(env: Env) -> None:
    lease = await env.coordinator.lock("conv:1", ttl=0.3)
    assert lease is not None
    await env.advance(0.2)
    assert await env.coordinator.extend(lease, ttl=0.5)
    await env.advance(0.2)  # past the first TTL
    assert await env.peer.lock("conv:1", ttl=30) is None
    await env.advance(0.4)  # past the extended TTL
    assert not await env.coordinator.extend(lease, ttl=0.5)
    assert await env.peer.lock("conv:1", ttl=30) is not None


async def test_a_lost_lease_cannot_touch_the_new_owners_lock(env: Env) -> None:
    lost = await env.coordinator.lock("conv:1", ttl=0.3)
    assert lost is not None
    await env.advance(0.4)
    owner = await env.peer.lock("conv:1", ttl=30)
    assert owner is not None
    await env.coordinator.release(lost)
    assert not await env.coordinator.extend(lost, ttl=30)
    assert await env.coordinator.lock("conv:1", ttl=30) is None
    assert await env.peer.extend(owner, ttl=30)
    await env.peer.release(owner)
    assert await env.coordinator.lock("conv:1", ttl=30) is not None


# --- reserve (GCRA) ---


async def slots(calls: list[Callable[[], Awaitable[float]]]) -> list[tuple[float, float, float]]:
    """(start, wait, end) of each call, in seconds from the first call's start."""
    loop = asyncio.get_running_loop()
    origin = loop.time()
    found = []
    for call in calls:
        before = loop.time() - origin
        wait = await call()
        found.append((before, wait, loop.time() - origin))
    return found


def assert_slots(found: list[tuple[float, float, float]], expected: list[float]) -> None:
    """The waits place every slot on the expected schedule, which starts when the first
    call reached the coordinator: some moment during that call. A busy machine or a slow
    round trip moves when each wait was measured from, never the slot itself."""
    tol = 0.01
    low, high = found[0][0], found[0][2]  # where the schedule may start
    for (before, wait, after), slot in zip(found, expected, strict=True):
        if slot == 0.0:
            assert wait == 0.0, (found, expected)
            continue
        low = max(low, before + wait - slot - tol)
        high = min(high, after + wait - slot + tol)
    assert low <= high, (found, expected)


async def test_reserve_paces_at_the_rate(env: Env) -> None:
    found = await slots([lambda: env.coordinator.reserve("slack", rate=10, burst=1)] * 5)
    assert_slots(found, [0.0, 0.1, 0.2, 0.3, 0.4])
    assert await env.coordinator.reserve("other", rate=10, burst=1) == 0.0


async def test_reserve_honours_the_burst(env: Env) -> None:
    found = await slots([lambda: env.coordinator.reserve("slack", rate=10, burst=3)] * 5)
    assert_slots(found, [0.0, 0.0, 0.0, 0.1, 0.2])


async def test_reserve_is_shared_between_processes(env: Env) -> None:
    first, second = env.coordinator, env.peer
    whose = [first if i % 2 else second for i in range(4)]
    found = await slots([functools.partial(who.reserve, "x", 20, 1) for who in whose])
    assert_slots(found, [0.0, 0.05, 0.1, 0.15])


async def test_reserve_recovers_when_idle(env: Env) -> None:
    assert await env.coordinator.reserve("slack", rate=10, burst=2) == 0.0
    assert await env.coordinator.reserve("slack", rate=10, burst=2) == 0.0
    assert await env.coordinator.reserve("slack", rate=10, burst=2) > 0.05
    await env.advance(0.35)  # the waiting slot, then two intervals to refill the burst
    assert await env.coordinator.reserve("slack", rate=10, burst=2) == 0.0
    assert await env.coordinator.reserve("slack", rate=10, burst=2) == 0.0


# --- pause ---


async def test_a_pause_is_seen_by_every_process_until_it_ends(env: Env) -> None:
    assert await env.coordinator.paused("slack") == 0.0
    await env.coordinator.pause("slack", 0.3)
    assert await env.peer.paused("slack") == pytest.approx(0.3, abs=0.05)
    assert await env.peer.paused("other") == 0.0
    await env.advance(0.35)
    assert await env.peer.paused("slack") == 0.0


async def test_a_shorter_pause_never_shortens_a_longer_one(env: Env) -> None:
    await env.coordinator.pause("slack", 0.4)
    await env.peer.pause("slack", 0.1)
    assert await env.coordinator.paused("slack") == pytest.approx(0.4, abs=0.05)
    await env.peer.pause("slack", 0.6)
    assert await env.coordinator.paused("slack") == pytest.approx(0.6, abs=0.05)


async def test_reserve_gives_no_slot_before_a_pause_ends_then_no_burst(env: Env) -> None:
    await env.peer.pause("slack", 0.3)
    waits = [await env.coordinator.reserve("slack", rate=10, burst=3) for _ in range(3)]
    assert waits == pytest.approx([0.3, 0.4, 0.5], abs=0.05)
    assert await env.coordinator.reserve("other", rate=10, burst=3) == 0.0


async def test_invalid_arguments_are_rejected(env: Env) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await env.coordinator.first_seen("k", ttl=0)
    with pytest.raises(ValueError, match="ttl"):
        await env.coordinator.lock("k", ttl=-1)
    with pytest.raises(ValueError, match="rate"):
        await env.coordinator.reserve("k", rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        await env.coordinator.reserve("k", rate=1, burst=0)
    with pytest.raises(ValueError, match="ttl"):
        await env.coordinator.pause("k", 0)


# --- publish / waiter ---


async def test_publish_wakes_a_waiter_in_another_process(env: Env) -> None:
    waiter = env.coordinator.waiter("outbox")
    await settled(waiter)
    waiting = asyncio.create_task(waiter.wait(2.0))
    await asyncio.sleep(0.05)
    published_at = time.monotonic()
    await env.peer.publish("outbox")
    assert await waiting is True
    assert time.monotonic() - published_at < 0.5
    await waiter.close()


async def test_publishes_while_not_waiting_coalesce_into_one_wake_up(env: Env) -> None:
    waiter = env.coordinator.waiter("outbox")
    await settled(waiter)
    for _ in range(3):
        await env.peer.publish("outbox")
    await asyncio.sleep(0.1)  # delivered while nobody waits
    assert await waiter.wait(1.0) is True
    assert await waiter.wait(0.2) is False
    await waiter.close()


async def test_wait_times_out_without_a_publish(env: Env) -> None:
    waiter = env.coordinator.waiter("outbox")
    await settled(waiter)
    await env.peer.publish("another-topic")
    started = time.monotonic()
    assert await waiter.wait(0.2) is False
    assert 0.19 <= time.monotonic() - started < 1.0
    await waiter.close()


async def test_every_waiter_on_the_topic_wakes(env: Env) -> None:
    first, second = env.coordinator.waiter("outbox"), env.peer.waiter("outbox")
    third = env.coordinator.waiter("outbox")
    await settled(first, second, third)
    await third.close()
    await env.peer.publish("outbox")
    assert await first.wait(2.0) is True
    assert await second.wait(2.0) is True
    await first.close()
    await second.close()


async def test_a_topic_can_be_waited_on_again_after_its_last_waiter_closed(env: Env) -> None:
    waiter = env.coordinator.waiter("outbox")
    await settled(waiter)
    await waiter.close()
    await asyncio.sleep(0.05)  # Redis: let the UNSUBSCRIBE go out
    again = env.coordinator.waiter("outbox")
    await settled(again)
    await env.peer.publish("outbox")
    assert await again.wait(2.0) is True
    await again.close()


async def test_ping_answers(env: Env) -> None:
    await env.coordinator.ping()


# --- Redis only: failures and reconnects ---


async def test_redis_unreachable_fails_loudly_and_quickly() -> None:
    coordinator = RedisCoordinator.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        started = time.monotonic()
        with pytest.raises(CoordinationUnavailable, match="ping"):
            await coordinator.ping()
        assert time.monotonic() - started < 2.0
        with pytest.raises(CoordinationUnavailable, match="first_seen"):
            await coordinator.first_seen("k", ttl=1)
        with pytest.raises(CoordinationUnavailable, match="lock"):
            await coordinator.lock("k", ttl=1, wait=0.5)
        with pytest.raises(CoordinationUnavailable, match="reserve"):
            await coordinator.reserve("k", rate=1, burst=1)
        with pytest.raises(CoordinationUnavailable, match="pause"):
            await coordinator.pause("k", 1)
        with pytest.raises(CoordinationUnavailable, match="paused"):
            await coordinator.paused("k")
        with pytest.raises(CoordinationUnavailable, match="publish"):
            await coordinator.publish("t")
    finally:
        await coordinator.close()


async def test_redis_waiter_wakes_after_its_timeout_while_disconnected() -> None:
    coordinator = RedisCoordinator.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        waiter = coordinator.waiter("outbox")
        # It cannot vouch that nothing was published, so the caller re-checks.
        assert await waiter.wait(0.2) is True
        assert await waiter.wait(0.2) is True
    finally:
        await coordinator.close()


async def _pubsub_client_ids(raw: Redis, name: str) -> list[str]:
    clients = await raw.client_list(_type="pubsub")
    return [str(client["id"]) for client in clients if client["name"] == name]


async def test_redis_waiter_resubscribes_after_its_connection_is_killed(
    redis_env: RedisEnv,
) -> None:
    waiter = redis_env.a.waiter("outbox")
    await settled(waiter)
    raw = Redis.from_url(redis_env.url, decode_responses=True)
    try:
        before = await _pubsub_client_ids(raw, f"{redis_env.name}:pubsub")
        assert len(before) == 1
        await raw.client_kill_filter(_id=before[0])
        # Published while the subscription is gone: the resubscription must wake us.
        await redis_env.b.publish("outbox")
        started = time.monotonic()
        assert await waiter.wait(3.0) is True
        assert time.monotonic() - started < 2.0

        await settled(waiter)
        after = await _pubsub_client_ids(raw, f"{redis_env.name}:pubsub")
        assert len(after) == 1 and after != before
        await redis_env.b.publish("outbox")
        assert await waiter.wait(2.0) is True
    finally:
        await raw.aclose()
        await waiter.close()


@asynccontextmanager
async def private_redis_server(port: int) -> AsyncIterator[None]:
    """A throwaway redis-server, so a test can stop and restart it without disturbing others."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    process = await asyncio.create_subprocess_exec(
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        probe = Redis(port=port)
        for _ in range(100):
            try:
                await probe.ping()
                break
            except RedisConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail(f"redis-server on port {port} did not start")
        await probe.aclose()
        yield
    finally:
        process.terminate()
        await process.wait()


async def test_redis_waiter_resubscribes_after_a_server_restart() -> None:
    port = closed_port()
    coordinator = RedisCoordinator.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        async with private_redis_server(port):
            waiter = coordinator.waiter("outbox")
            await settled(waiter)
        # Down: publishing fails loudly, waiting degrades to waking at every timeout.
        with pytest.raises(CoordinationUnavailable):
            await coordinator.publish("outbox")
        assert await waiter.wait(0.3) is True
        async with private_redis_server(port):
            started = time.monotonic()
            assert await waiter.wait(3.0) is True
            assert time.monotonic() - started < 2.0
            await settled(waiter)
            await coordinator.publish("outbox")
            assert await waiter.wait(2.0) is True
    finally:
        await coordinator.close()


async def test_redis_keys_live_under_the_prefix(redis_env: RedisEnv) -> None:
    await redis_env.a.first_seen("m", ttl=60)
    assert await redis_env.a.lock("c", ttl=60) is not None
    await redis_env.a.reserve("r", rate=1, burst=1)
    await redis_env.a.pause("r", 60)
    raw = Redis.from_url(redis_env.url, decode_responses=True)
    try:
        keys = {key async for key in raw.scan_iter(match=f"{redis_env.prefix}*")}
    finally:
        await raw.aclose()
    assert keys == {
        f"{redis_env.prefix}{kind}" for kind in ("seen:m", "lock:c", "rate:r", "pause:r")
    }


async def test_make_coordinator_picks_the_backend() -> None:
    memory = make_coordinator(None)
    assert isinstance(memory, MemoryCoordinator)
    await memory.close()
    redis = make_coordinator("redis://127.0.0.1:6379/0")
    assert isinstance(redis, RedisCoordinator)
    await redis.close()
