"""Alembic environment: runs on the connection `storage.db` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage import models  # noqa: F401  (registers the tables)
from storage.models import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite ALTERs
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # autogenerate from the command line: `alembic -x url=sqlite:///x.db revision ...`
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///relaydesk-dev.db")
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
