"""Every benchmark, one after the other: `python -m tests.bench [--quick]`.

Ingest (open-loop webhooks), relay under Slack's rate limit, the reply path, memory, a
50 MB team file sent, a 100 MB media relay, the stats queries (tests/bench/bench_stats.py)
when present, and listening (bench_listen). Each prints its own table with PASS/MISS
against its target; nothing is asserted. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from collections.abc import Sequence

BENCHES = (
    "tests.bench.bench_ingest",
    "tests.bench.bench_relay",
    "tests.bench.bench_reply",
    "tests.bench.bench_memory",
    "tests.bench.bench_file",
    "tests.bench.bench_media",
    "tests.bench.bench_stats",
    "tests.bench.bench_markup",
    "tests.bench.bench_listen",
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter steps, less data")
    parser.add_argument("--only", nargs="*", help="e.g. ingest relay (default: all)")
    args = parser.parse_args(argv)
    for name in BENCHES:
        short = name.rsplit(".", 1)[1].removeprefix("bench_")
        if args.only and short not in args.only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"\n== {short}: not present, skipped")
            continue
        print(f"\n== {short}", flush=True)
        started = time.monotonic()
        asyncio.run(module.main(["--quick"] if args.quick else []))
        print(f"({short} took {time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
