"""`python -m tests.demo`: play the morning, print the Slack side and the figures."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from tests.demo.morning import play
from tests.demo.stage import stage
from tests.demo.transcript import Style, customer_side, figures, slack_transcript


async def main() -> int:
    style = Style.for_stdout()
    started = time.monotonic()
    print(style.bold("Relaydesk demo: a morning at the support desk"))
    print(style.dim("The real bot on SQLite, against local stand-ins for Slack and the networks."))
    async with stage() as playing:
        local = playing.started.astimezone(playing.tz)
        print(style.dim(f"It is {local:%A %H:%M} in {playing.zone}, the TIMEZONE it plays in."))
        await play(playing, style)
        print(await slack_transcript(playing, style))
        print(customer_side(playing, style))
        print(await figures(playing, style))
    print(style.dim(f"\nDone in {time.monotonic() - started:.1f}s; nothing is left running."))
    return 0


if __name__ == "__main__":
    # Only the bot's own errors would matter here; its routine warnings (the
    # blocked customer's failed delivery) are part of the story already.
    logging.basicConfig(level=logging.ERROR, format="demo: %(name)s: %(message)s")
    sys.stdout.reconfigure(errors="replace")  # type: ignore[union-attr]
    sys.exit(asyncio.run(main()))
