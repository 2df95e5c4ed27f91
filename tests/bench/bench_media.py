"""Media: one 100 MB customer video relayed into Slack by one serve process (SQLite).

    .venv/bin/python -m tests.bench.bench_media [--quick]   # --quick: 20 MB

A signed WhatsApp webhook names a video by its media id; the dispatcher looks the id up
on the fake Graph, downloads the bytes (with the token) and streams them to the fake
Slack's upload URL (files.getUploadURLExternal + files.completeUploadExternal). Measured:
the webhook's answer (it must not download anything), the time until the file is shared
in the thread, and the serve process's RSS sampled every 20 ms throughout; once with the
length announced (streamed straight through), once without (spooled to a temporary file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from tests.bench.common import Setup, rss_mb, sqlite_setup, table, verdict
from tests.harness import META_SECRET
from tests.signing import meta_headers

TARGET_MB = 200.0
SAMPLE_SECONDS = 0.02


def webhook(phone_number_id: str, media_id: str) -> bytes:
    """A WhatsApp video message (Cloud API `messages` webhook)."""
    message = {
        "from": "15550009999",
        "id": f"wamid.{media_id}",
        "timestamp": str(int(time.time())),
        "type": "video",
        "video": {"caption": "unboxing", "mime_type": "video/mp4", "id": media_id},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": "15550009999"}],
        "messages": [message],
    }
    entry = {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


async def relay_once(setup: Setup, size: int, announce_length: bool) -> list[object]:
    """One video through serve; its table row."""
    (pid,) = setup.pids()
    (url,) = setup.urls
    fakes = setup.fakes
    media_id = f"BENCHVIDEO{len(fakes.slack.uploads) + 1}"
    fakes.graph.files.add(
        media_id,
        b"\x00\x00\x00\x18ftypmp42",
        "video/mp4",
        size=size,
        announce_length=announce_length,
    )
    before = peak = rss_mb(pid)
    body = webhook(setup.cluster.env["WHATSAPP_PHONE_NUMBER_ID"], media_id)
    completed = len(fakes.slack.calls_to("files.completeUploadExternal"))
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json", **meta_headers(body, META_SECRET)}
        async with session.post(url + "/webhooks/whatsapp", data=body, headers=headers) as answer:
            status = answer.status
            await answer.read()
    answered_at = time.monotonic()
    answered = answered_at - started
    shared = None
    while time.monotonic() - started < 300:
        peak = max(peak, rss_mb(pid))
        completes = fakes.slack.calls_to("files.completeUploadExternal")[completed:]
        if completes and completes[-1].status == 200:
            shared = time.monotonic() - started
            break
        await asyncio.sleep(SAMPLE_SECONDS)
    received = list(fakes.slack.uploads.values())[-1]["received"] or 0
    # the fakes run here: their calls' times are this process's monotonic clock
    fetched = [
        c for c in fakes.graph.calls if media_id in c.path or c.params.get("mid") == media_id
    ]
    fetched_before_answer = any(c.at < answered_at for c in fetched)
    await asyncio.sleep(2)
    megabytes = size / (1024 * 1024)
    return [
        "yes" if announce_length else "no (spooled)",
        status,
        answered * 1000,
        "yes" if fetched_before_answer else "no",
        shared if shared is not None else "never",
        megabytes / shared if shared else 0.0,
        f"{received:,}",
        before,
        peak,
        rss_mb(pid),
    ]


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 20 MB video")
    args = parser.parse_args(argv)
    size = (20 if args.quick else 100) * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        async with sqlite_setup(Path(tmp)) as setup:
            rows = [await relay_once(setup, size, announce) for announce in (True, False)]
    print(f"\nMedia: a {size // (1024 * 1024)} MB WhatsApp video relayed by one serve (SQLite)")
    headers = [
        "length announced",
        "webhook",
        "answer ms",
        "fetched before 200",
        "shared after s",
        "MB/s",
        "bytes in Slack",
        "RSS before MB",
        "RSS peak MB",
        "+2 s MB",
    ]
    print(table(headers, rows))
    ok = all(row[6] == f"{size:,}" and float(str(row[8])) < TARGET_MB for row in rows)
    print(f"target: relayed whole, RSS < {TARGET_MB:.0f} MB -> {verdict(ok)}")


if __name__ == "__main__":
    asyncio.run(main())
