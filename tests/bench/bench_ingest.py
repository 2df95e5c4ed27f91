"""Ingest: signed Telegram webhooks offered open-loop at fixed rates.

    .venv/bin/python -m tests.bench.bench_ingest [--quick]

For each setup (a bare aiohttp handler for reference, serve on SQLite with one process,
serve on PostgreSQL + Redis with two processes, requests round-robin) and each rate,
after a one-second warm-up that is not counted, prints accepted/s, p50/p99 time to the
200 and checks that every accepted message is a row in SQL right after its step (a 200
means stored).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.common import (
    Setup,
    Step,
    TelegramUpdates,
    open_loop,
    percentile,
    postgres_available,
    postgres_setup,
    sqlite_setup,
    table,
    verdict,
)
from tests.chaos.cluster import ROOT, free_port, until
from tests.harness import TELEGRAM_SECRET

RATES = (200, 500, 1000, 1500, 2000)
WARM_UP_RATE = 100  # for one second before a setup's first step
# setup name -> (accepted/s at least, p99 ms below)
TARGETS = {"SQLite, 1 process": (500.0, 100.0), "PostgreSQL + Redis, 2 processes": (1500.0, 50.0)}
BARE = "bare aiohttp (secret check only)"


@dataclass
class Result:
    setup: str
    step: Step
    stored_ok: bool | None  # None: nothing to count (the bare handler)


@asynccontextmanager
async def bare_setup(workdir: Path) -> AsyncIterator[list[str]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.bare_server",
        str(port),
        TELEGRAM_SECRET,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import aiohttp

        async def up() -> bool:
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(url + "/healthz") as response:
                        return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(up, 20, "the bare server")
        yield [url]
    finally:
        process.kill()
        await process.wait()


async def run_steps(
    name: str, urls: list[str], setup: Setup | None, rates: Sequence[int], duration: float
) -> list[Result]:
    updates = TelegramUpdates()
    results: list[Result] = []
    # Warm-up, not counted: first connections, prepared statements, type lookups.
    await open_loop(urls, WARM_UP_RATE, 1.0, updates.next)
    for rate in rates:
        step = await open_loop(urls, rate, duration, updates.next)
        stored_ok = None
        if setup is not None:
            # every 200 must already be a row: a 200 means stored
            stored_ok = set(step.accepted_ids) <= await setup.stored_ids()
        results.append(Result(name, step, stored_ok))
        print(
            f"  {name} @ {rate}/s: {step.accepted}/{step.sent} accepted, "
            f"p99 {percentile(step.latencies, 0.99) * 1000:.1f} ms",
            flush=True,
        )
        await asyncio.sleep(1.0)  # let the dispatcher's wake-ups settle between steps
    return results


def passed_settings() -> dict[str, str]:
    """Settings the servers get from this process's environment: `ROUTING_RULES=rules.toml
    python -m tests.bench --only ingest` measures ingest with routing rules (the teams'
    channels come from the environment too, e.g. SLACK_TEAM_CHANNEL_SALES)."""
    return {
        key: value
        for key, value in os.environ.items()
        if key in ("ROUTING_RULES", "SLA_MINUTES_URGENT") or key.startswith("SLACK_TEAM_CHANNEL_")
    }


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per step instead of 5")
    args = parser.parse_args(argv)
    duration = 2.0 if args.quick else 5.0
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="relaydesk-bench-") as tmp:
        workdir = Path(tmp)
        async with bare_setup(workdir) as urls:
            results += await run_steps(BARE, urls, None, RATES, duration)
        (workdir / "sqlite").mkdir()
        async with sqlite_setup(workdir / "sqlite", passed_settings()) as setup:
            results += await run_steps(setup.name, setup.urls, setup, RATES, duration)
        if postgres_available():
            (workdir / "pg").mkdir()
            postgres: AbstractAsyncContextManager[Setup] = postgres_setup(
                workdir / "pg", 2, passed_settings()
            )
            async with postgres as setup:
                results += await run_steps(setup.name, setup.urls, setup, RATES, duration)
        else:
            print("  PostgreSQL is not reachable on 127.0.0.1:5432: skipped")
    print(report(results, duration))


def report(results: list[Result], duration: float) -> str:
    bare = {r.step.rate: r.step.accepted_per_second for r in results if r.setup == BARE}
    rows: list[list[Any]] = []
    for r in results:
        s = r.step
        others = ",".join(
            f"{n}x{status or 'err'}" for status, n in sorted(s.statuses.items()) if status != 200
        )
        if s.skipped:
            others += f"{',' if others else ''}{s.skipped}xcap"
        ratio = s.accepted_per_second / bare[s.rate] if bare.get(s.rate) else math.nan
        rows.append(
            [
                r.setup,
                s.rate,
                s.sent,
                s.accepted,
                s.accepted_per_second,
                percentile(s.latencies, 0.5) * 1000,
                percentile(s.latencies, 0.99) * 1000,
                others or "0",
                "-" if r.stored_ok is None else ("yes" if r.stored_ok else "NO"),
                "-" if r.setup == BARE else f"{ratio:.2f}",
            ]
        )
    lines = [
        f"\nIngest: signed Telegram webhooks, open loop, {duration:.0f} s per step "
        "(not 200: count x status; err: timeout/connection; cap: not sent, 2,000 in flight)",
        table(
            [
                "setup",
                "offered/s",
                "sent",
                "200s",
                "accepted/s",
                "p50 ms",
                "p99 ms",
                "not 200",
                "stored",
                "vs bare",
            ],
            rows,
        ),
    ]
    for name, (rate, p99) in TARGETS.items():
        steps = [r.step for r in results if r.setup == name]
        if not steps:
            continue
        # A step counts when every request it offered was answered 200 (accepted/s can
        # only trail the offered rate: the last answers land after the step's end).
        best = max(
            (
                s
                for s in steps
                if s.accepted == s.sent + s.skipped and percentile(s.latencies, 0.99) * 1000 < p99
            ),
            key=lambda s: s.rate,
            default=None,
        )
        got = best.rate if best else 0
        lines.append(
            f"target {name}: >= {rate:.0f}/s with p99 < {p99:.0f} ms -> "
            f"{verdict(got >= rate)} (best: {got:,}/s offered, all answered 200 within "
            "the p99 bound)"
        )
    stored = [r for r in results if r.stored_ok is False]
    lines.append(
        "every 200 was a row in SQL right after its step"
        if not stored
        else f"NOT STORED after a 200 in {len(stored)} steps"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
