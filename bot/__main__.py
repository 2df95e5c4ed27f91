"""Command line: serve | migrate | summary | demo | check | rebuild-rollups.

Configuration mistakes exit 2 with one human sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from aiohttp import web

from bot import serving
from bot.check import Unreachable, reach_redis, reach_sql, run_check
from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure
from bot.slack import SlackError
from storage import rollups
from storage.db import DatabaseUnavailable

ROOT = Path(__file__).resolve().parent.parent

# A command that needs settings: it gets them loaded and validated, and returns
# the exit code. Add a new one here and in `_parser()`.
Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo()
    try:
        settings = load_settings()
        configure(settings.log_format)
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"relaydesk: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (webhooks, Slack, timers)")
    commands.add_parser("migrate", help="bring the SQL schema up to date")
    commands.add_parser("check", help="validate settings, tokens, channels and people")
    summary = commands.add_parser("summary", help="post the daily summary now")
    summary.add_argument(
        "--date", help="local day to summarise, YYYY-MM-DD (default: yesterday in TIMEZONE)"
    )
    commands.add_parser("demo", help="the offline sandbox: a morning against local stand-ins")
    commands.add_parser(
        "rebuild-rollups", help="recompute the stats roll-ups from the raw messages"
    )
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    _require(settings.require_slack)
    try:
        sockets = serving.bind(settings.host, settings.port)
    except serving.Unbindable as exc:
        raise ConfigError(str(exc)) from None
    asyncio.run(_preflight(settings))
    from bot.web import SHUTDOWN_SECONDS, create_app

    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)  # runs after the app's own start-up
    serving.run(app, sockets, shutdown_timeout=SHUTDOWN_SECONDS, loop_factory=_event_loop)
    return 0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (Linux, macOS): less CPU per request and per SQL round trip."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _freeze_startup_objects(app: web.Application) -> None:
    """Move everything built at start-up out of the collector's sight.

    A full (generation 2) collection otherwise walks every module, ORM mapper and
    compiled statement: about 80 ms with the event loop stopped, which was the
    webhooks' p99 under load. Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_upgrade(settings))
    print("schema is up to date")
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    logging.getLogger("slack_sdk").setLevel(logging.WARNING)  # its retry notes are noise here
    return asyncio.run(run_check(settings))


def _summary(settings: Settings, args: argparse.Namespace) -> int:
    _require(settings.require_slack)
    day = None
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise ConfigError(f"--date must look like 2026-11-22, not '{args.date}'") from None
    channel, _ = asyncio.run(_post_summary(settings, day))
    print(f"summary posted to {channel}")
    return 0


def _rebuild_rollups(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_upgrade(settings, rebuild=True))
    print("stats roll-ups rebuilt from the raw messages")
    return 0


async def _post_summary(settings: Settings, day: date | None) -> tuple[str, str]:
    """On demand: post whatever was asked, even if the scheduled one went out already."""
    from bot.app import build_services

    await _preflight(settings)
    services = build_services(settings)
    try:
        await services.db.migrate()
        return await services.summary.post(day)
    except SlackError as exc:
        raise ConfigError(f"Slack refused the summary post: {exc.code}") from None
    finally:
        await services.close()


COMMANDS: dict[str, Command] = {
    "serve": _serve,
    "migrate": _migrate,
    "check": _check,
    "summary": _summary,
    "rebuild-rollups": _rebuild_rollups,
}


def _demo() -> int:
    """Run the sandbox, which lives with the tests' fakes, in its own process.

    Production code never imports `tests`; the demo is started as
    `python -m tests.demo` from the repository root instead.
    """
    if not (ROOT / "tests" / "demo" / "__main__.py").is_file():
        print(
            "relaydesk: the demo lives in tests/demo/ of the source repository, which this "
            "installation does not have; run `make demo` in a checkout instead",
            file=sys.stderr,
        )
        return 2
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    try:
        return subprocess.call(
            [sys.executable, "-m", "tests.demo"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": path},
        )
    except KeyboardInterrupt:
        return 130


def _require(check: Callable[[], None]) -> None:
    try:
        check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def _preflight(settings: Settings) -> None:
    """Fail at start, in words, when SQL or Redis cannot be reached."""
    try:
        db = await reach_sql(settings.database_url)
        await db.dispose()
        if settings.redis_url:
            coordinator = await reach_redis(settings.redis_url)
            await coordinator.close()
    except Unreachable as exc:
        raise ConfigError(str(exc)) from None


async def _upgrade(settings: Settings, *, rebuild: bool = False) -> None:
    try:
        db = await reach_sql(settings.database_url)
    except Unreachable as exc:
        raise ConfigError(str(exc)) from None
    try:
        await db.migrate()
        if rebuild:
            await rollups.rebuild(db)
    except DatabaseUnavailable as exc:
        raise ConfigError(f"DATABASE_URL cannot be reached: {exc}") from None
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
