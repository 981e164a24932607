"""Apply Alembic migrations programmatically (server start-up, CLI, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from flowgate.core.startlock import startup_lock

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to repeat, and safe from several processes at the
    same moment: it holds the database's start-up lock, so one migrates and the others then find
    nothing to do. It must not run inside a running event loop (it starts its own)."""

    async def locked() -> None:
        async with startup_lock(database_url):
            # Alembic's env.py runs its own event loop, so it gets a thread of its own.
            await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)

    asyncio.run(locked())


def is_at_head(database_url: str) -> bool:
    """Whether the schema is at the newest migration (False for an empty database)."""
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())

    def current(conn: Connection) -> set[str]:
        return set(MigrationContext.configure(conn).get_current_heads())

    async def go() -> set[str]:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(current)
        finally:
            await engine.dispose()

    return asyncio.run(go()) == heads
