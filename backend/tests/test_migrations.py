"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from flowgate.core.db import create_engine
from flowgate.core.migrate import upgrade
from flowgate.models import Base
from tests.conftest import database_for


def diff_against_models(url: str) -> tuple[list[object], dict[str, set[str]]]:
    async def go() -> tuple[list[object], dict[str, set[str]]]:
        engine = create_engine(url)
        async with engine.connect() as conn:

            def compare(sync_conn: object) -> tuple[list[object], dict[str, set[str]]]:
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})  # type: ignore[arg-type]
                insp = inspect(sync_conn)
                indexes = {
                    table: {ix["name"] or "" for ix in insp.get_indexes(table)}
                    for table in ("gateways",)
                }
                return list(compare_metadata(ctx, Base.metadata)), indexes

            result = await conn.run_sync(compare)
        await engine.dispose()
        return result

    return asyncio.run(go())


def test_upgrade_matches_models_and_is_repeatable(backend: str, tmp_path: Path) -> None:
    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    try:
        upgrade(url)
        upgrade(url)  # a second run is a no-op
        diff, indexes = diff_against_models(url)
        assert diff == []
        # The seed's "Performance Optimizations": indexes on instance_id, org_id and last_seen.
        for column in ("instance_id", "org_id", "last_seen"):
            assert f"ix_gateways_{column}" in indexes["gateways"]
    finally:
        if pg_name:
            from tests.support.server import drop_pg_database

            drop_pg_database(pg_name)


@pytest.mark.parametrize("revision", ["base"])
def test_downgrade_to_base_and_up_again(revision: str, tmp_path: Path) -> None:
    from alembic import command

    from flowgate.core.migrate import alembic_config

    url = f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), revision)
    upgrade(url)
    assert diff_against_models(url)[0] == []
