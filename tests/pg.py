"""A throwaway PostgreSQL database per test: others share the `test` database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.services import require_postgres


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """Yield the SQLAlchemy URL of a new, empty database; drop it afterwards."""
    base = require_postgres()
    name = f"relaydesk_{uuid.uuid4().hex[:12]}"
    admin_dsn = base.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
