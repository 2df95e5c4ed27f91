"""A team file to the customer: RSS of one serve process while it sends a 50 MB file.

    .venv/bin/python -m tests.bench.bench_file [--quick]   # --quick: the same, one file

One serve process (SQLite). A person shares a 50 MB file in a Telegram conversation's
thread (a signed `file_share` event); the bot downloads it from the fake Slack (served
from disk) and uploads it to the fake Telegram (`sendDocument`, multipart), which counts
the bytes as they arrive instead of holding them. The serve process's RSS is sampled every
20 ms from the event to the end of the upload; VmHWM is the process's peak since start.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.bench.common import rss_mb, sqlite_setup, table, verdict
from tests.chaos.cluster import (
    AGENT,
    TELEGRAM_INBOX,
    Load,
    post_slack_event,
    relayed,
    slack_event_body,
    until,
)
from tests.fakes import FakeTelegram

TARGET_MB = 200.0
SIZE = 50 * 1024 * 1024
CHUNK = 1024 * 1024


class CountingTelegram(FakeTelegram):
    """sendDocument bodies are counted as they stream in, never kept."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[int] = []  # body bytes of each sendDocument

    def streams(self, request: web.Request) -> bool:
        return request.match_info.get("method", "").lower() == "senddocument"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self.streams(request):
            return await super()._handle(request)
        size = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
        self.received.append(size)
        message = {"message_id": len(self.received), "chat": {"id": 0}, "date": int(time.time())}
        return web.json_response({"ok": True, "result": message})


def peak_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_file(path: Path) -> None:
    with path.open("wb") as out:
        for _ in range(SIZE // CHUNK):
            out.write(b"\0" * CHUNK)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same (one file either way)")
    parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp,
        tempfile.TemporaryDirectory(prefix="relaydesk-bench-file-") as files,
    ):
        big = Path(files) / "big.zip"
        write_file(big)
        async with sqlite_setup(Path(tmp)) as setup:
            counting = await CountingTelegram().start()
            await setup.fakes.telegram.stop()
            setup.fakes.telegram = counting
            setup.cluster.env["TELEGRAM_API_URL"] = counting.url
            await setup.cluster.close()
            for node in setup.cluster.nodes:
                await setup.cluster.spawn(node)
                await setup.cluster.wait_healthy(node)
            await Load(setup.cluster, 2, 1).run()  # a Telegram and a generic conversation
            await until(lambda: len(relayed(setup.fakes.slack)) == 2, 60, "the threads")
            (thread,) = [t for key, (t,) in relayed(setup.fakes.slack).items() if key[:2] == "tg"]
            (pid,) = setup.pids()
            url = setup.fakes.slack.add_file("T0001-FBIG/download/big.zip", big)
            message = setup.fakes.slack.add_message(
                TELEGRAM_INBOX, "", user=AGENT, thread_ts=thread.ts
            )
            event = {
                "type": "message",
                "subtype": "file_share",
                "channel": TELEGRAM_INBOX,
                "user": AGENT,
                "text": "",
                "ts": message["ts"],
                "thread_ts": thread.ts,
                "channel_type": "channel",
                "event_ts": message["ts"],
                "files": [
                    {
                        "id": "FBIG",
                        "name": "big.zip",
                        "mimetype": "application/zip",
                        "size": SIZE,
                        "url_private_download": url,
                        "mode": "hosted",
                    }
                ],
            }
            before = rss_mb(pid)
            samples = [before]
            started = time.monotonic()
            async with aiohttp.ClientSession() as session:
                body = slack_event_body(event, "EvBenchFile")
                status = await post_slack_event(session, setup.cluster.nodes[0], body)
                assert status == 200, status
            while not counting.received and time.monotonic() - started < 120:
                samples.append(rss_mb(pid))
                await asyncio.sleep(0.02)
            took = time.monotonic() - started
            after = rss_mb(pid)
            hwm = peak_mb(pid)
            received = counting.received[0] if counting.received else 0
            await counting.stop()
    peak = max(*samples, after)
    print("\nA 50 MB team file: Slack download -> Telegram sendDocument, one serve process")
    print(
        table(
            ["body MB", "took s", "RSS before MB", "RSS peak MB", "RSS after MB", "VmHWM MB"],
            [[received / 1024 / 1024, took, before, peak, after, hwm]],
        )
    )
    print(f"target: RSS < {TARGET_MB:.0f} MB while sending -> {verdict(peak < TARGET_MB)}")


if __name__ == "__main__":
    asyncio.run(main())
