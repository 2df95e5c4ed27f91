"""Memory: RSS of one serve process (SQLite) after 100,000 customer messages.

    .venv/bin/python -m tests.bench.bench_memory [--quick]   # --quick: 10,000

Messages are Telegram webhooks in 1,000 conversations, 50 requests in flight at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from tests.bench.common import TelegramUpdates, rss_mb, sqlite_setup, table, verdict

TARGET_MB = 200.0
IN_FLIGHT = 50


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 messages")
    args = parser.parse_args(argv)
    total = 10_000 if args.quick else 100_000
    updates = TelegramUpdates(conversations=1000, first_chat=500_000)
    statuses: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        async with sqlite_setup(Path(tmp)) as setup:
            (pid,) = setup.pids()
            (url,) = setup.urls
            before = rss_mb(pid)
            started = time.monotonic()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(total):
                queue.put_nowait(i)
            async with aiohttp.ClientSession() as session:

                async def worker() -> None:
                    while not queue.empty():
                        queue.get_nowait()
                        path, body, headers, _ = updates.next()
                        try:
                            async with session.post(
                                url + path,
                                data=body,
                                headers={"Content-Type": "application/json", **headers},
                            ) as response:
                                await response.read()
                                status = response.status
                        except aiohttp.ClientError:
                            status = 0
                        statuses[status] = statuses.get(status, 0) + 1

                await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            took = time.monotonic() - started
            after = rss_mb(pid)
            stored = await setup.stored()
            await asyncio.sleep(5)
            settled = rss_mb(pid)
    print(f"\nMemory: one serve process (SQLite), {total:,} Telegram messages")
    print(
        table(
            ["messages", "stored", "answers", "took s", "RSS before MB", "RSS after MB", "+5 s MB"],
            [[total, stored, str(statuses), took, before, after, settled]],
        )
    )
    peak = max(after, settled)
    print(f"target: RSS < {TARGET_MB:.0f} MB -> {verdict(peak < TARGET_MB)}")


if __name__ == "__main__":
    asyncio.run(main())
