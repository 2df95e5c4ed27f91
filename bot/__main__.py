"""Command line: serve | migrate | summary | demo | check.

Configuration mistakes exit 2 with one human sentence, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiohttp import web

from bot.config import ConfigError, Settings, load_settings
from bot.logs import configure
from storage.coordination import CoordinationUnavailable, make_coordinator
from storage.db import Database, DatabaseUnavailable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (webhooks, Slack, timers)")
    commands.add_parser("migrate", help="bring the SQL schema up to date")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure(settings.log_format)
        if args.command == "serve":
            _require(settings.require_slack)
            asyncio.run(_preflight(settings))
            from bot.web import create_app

            web.run_app(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                print=None,
                shutdown_timeout=8.0,
            )
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
            print("schema is up to date")
    except ConfigError as exc:
        print(f"relaydesk: {exc}", file=sys.stderr)
        return 2
    return 0


def _require(check: object) -> None:
    try:
        check()  # type: ignore[operator]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def _preflight(settings: Settings) -> None:
    """Fail at start, in words, when SQL or Redis cannot be reached."""
    db = Database(settings.database_url)
    try:
        await asyncio.wait_for(db.ping(), 10)
    except (DatabaseUnavailable, TimeoutError) as exc:
        raise ConfigError(f"DATABASE_URL cannot be reached: {exc or 'timed out'}") from None
    finally:
        await db.dispose()
    if settings.redis_url:
        coordinator = make_coordinator(settings.redis_url)
        try:
            await asyncio.wait_for(coordinator.ping(), 10)
        except (CoordinationUnavailable, TimeoutError) as exc:
            raise ConfigError(f"REDIS_URL cannot be reached: {exc or 'timed out'}") from None
        finally:
            await coordinator.close()


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database_url)
    try:
        await db.migrate()
    except DatabaseUnavailable as exc:
        raise ConfigError(f"DATABASE_URL cannot be reached: {exc}") from None
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
