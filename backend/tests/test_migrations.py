"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

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


def _previous(revision: str) -> str:
    from alembic.script import ScriptDirectory

    from flowgate.core.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    down = script.get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def _tables(*, last_seen: bool = False, opamp_state: bool = False) -> tuple[Any, Any]:
    """Lightweight ``organizations`` and ``gateways`` tables for seeding rows at an older
    revision (the models describe the newest schema)."""
    import sqlalchemy as sa

    from flowgate.core.db import UTCDateTime

    orgs = sa.table(
        "organizations",
        sa.column("id", sa.Uuid()),
        sa.column("name"),
        sa.column("created_at", UTCDateTime()),
    )
    json_type = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    json_columns = ["extra_metadata", "labels", "agent_labels", "manual_labels"]
    dates = ["created_at", "updated_at"]
    gws = sa.table(
        "gateways",
        *(sa.column(c) for c in ("instance_id", "name", "status", "transport")),
        *(sa.column(c, json_type) for c in [*json_columns, *(["opamp_state"] * opamp_state)]),
        sa.column("id", sa.Uuid()),
        sa.column("org_id", sa.Uuid()),
        *(sa.column(c, UTCDateTime()) for c in [*(["last_seen"] * last_seen), *dates]),
    )
    return orgs, gws


async def _run_sync(url: str, fn: object) -> object:
    """Run ``fn(connection)`` in one transaction on a fresh engine."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        result = await conn.run_sync(fn)  # type: ignore[arg-type]
    await engine.dispose()
    return result


def test_health_migration_backfills_counts_and_triggers_and_downgrades(
    backend: str, tmp_path: Path
) -> None:
    """0009 on a database holding gateways: their health is the rule (default thresholds), the
    per-organisation counts equal a COUNT, the triggers exist (and record what follows); the
    downgrade removes all of it and the upgrade runs again."""
    import uuid
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa
    from alembic import command

    from flowgate.core.migrate import alembic_config
    from flowgate.gateways import triggers
    from flowgate.gateways.health import compute_health
    from flowgate.gateways.models import GatewayStatus

    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    before = _previous("0009")
    now = datetime.now(UTC)
    cases = {
        "fresh": ("active", 10),
        "late": ("active", 100),
        "gone": ("active", 1000),
        "new": ("registered", None),
        "off": ("inactive", 10),
        "broken": ("error", 10),
    }
    org_id = uuid.uuid4()
    orgs, gws = _tables(last_seen=True)

    async def run(fn: object) -> object:
        return await _run_sync(url, fn)

    def seed(conn: sa.Connection) -> None:
        conn.execute(orgs.insert().values(id=org_id, name="o", created_at=now))
        for name, (status, age) in cases.items():
            conn.execute(
                gws.insert().values(
                    id=uuid.uuid4(),
                    org_id=org_id,
                    instance_id=name,
                    name=name,
                    status=status,
                    transport="rest",
                    extra_metadata={},
                    labels={},
                    agent_labels={},
                    manual_labels={},
                    created_at=now,
                    updated_at=now,
                    last_seen=None if age is None else now - timedelta(seconds=age),
                )
            )

    def state(conn: sa.Connection) -> tuple[dict[str, str], dict[tuple[str, str], int], set[str]]:
        health = dict(conn.execute(sa.text("SELECT name, health FROM gateways")).all())
        counts = {
            (s, h): int(n)
            for s, h, n in conn.execute(sa.text("SELECT status, health, n FROM gateway_counts"))
        }
        return health, counts, triggers.existing(conn)

    try:
        upgrade(url, before)
        asyncio.run(run(seed))
        upgrade(url)
        health, counts, found = asyncio.run(run(state))  # type: ignore[misc]
        expected = {
            name: compute_health(
                GatewayStatus(status),
                None if age is None else now - timedelta(seconds=age),
                now,
            ).status
            for name, (status, age) in cases.items()
        }
        assert health == expected
        assert counts == {(status, expected[name]): 1 for name, (status, _) in cases.items()}
        assert found == set(triggers.NAMES)

        command.downgrade(alembic_config(url), before)

        def after_downgrade(conn: sa.Connection) -> tuple[set[str], set[str]]:
            insp = sa.inspect(conn)
            columns = {c["name"] for c in insp.get_columns("gateways")}
            return columns, set(insp.get_table_names())

        columns, tables = asyncio.run(run(after_downgrade))  # type: ignore[misc]
        assert "health" not in columns
        assert not {"gateway_health_history", "gateway_counts", "scheduled_jobs"} & tables
        upgrade(url)
        assert asyncio.run(run(state))[2] == set(triggers.NAMES)  # type: ignore[index]
    finally:
        if pg_name:
            from tests.support.server import drop_pg_database

            drop_pg_database(pg_name)


def test_components_hash_migration_backfills_and_keeps_the_triggers(
    backend: str, tmp_path: Path
) -> None:
    """0014 fills ``components_hash`` from each gateway's OpAMP state (none where the state has
    no components); its downgrade drops the column without recreating the table, so the
    health triggers of 0009 stay (a batch recreate on SQLite would lose them)."""
    import uuid
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from alembic import command

    from flowgate.core.migrate import alembic_config
    from flowgate.gateways import triggers

    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    now = datetime.now(UTC)
    org_id = uuid.uuid4()
    states: dict[str, object] = {
        "reported": {"format": 1, "available_components": {"hash": "ab" * 32, "components": {}}},
        "hash-only": {"available_components": {"hash": "cd" * 32, "components": None}},
        "no-components": {"format": 1, "health": {"healthy": True}},
        "rest": None,
    }
    orgs, gws = _tables(opamp_state=True)

    async def run(fn: object) -> object:
        return await _run_sync(url, fn)

    def seed(conn: sa.Connection) -> None:
        conn.execute(orgs.insert().values(id=org_id, name="o", created_at=now))
        for name, state in states.items():
            conn.execute(
                gws.insert().values(
                    id=uuid.uuid4(),
                    org_id=org_id,
                    instance_id=name,
                    name=name,
                    status="registered",
                    transport="rest" if state is None else "opamp-ws",
                    extra_metadata={},
                    labels={},
                    agent_labels={},
                    manual_labels={},
                    opamp_state=state,
                    created_at=now,
                    updated_at=now,
                )
            )

    def hashes(conn: sa.Connection) -> dict[str, str | None]:
        return dict(conn.execute(sa.text("SELECT name, components_hash FROM gateways")).all())

    def columns_and_triggers(conn: sa.Connection) -> tuple[set[str], set[str]]:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("gateways")}
        return columns, triggers.existing(conn)

    try:
        upgrade(url, "0013")
        asyncio.run(run(seed))
        upgrade(url)
        assert asyncio.run(run(hashes)) == {
            "reported": "ab" * 32,
            "hash-only": "cd" * 32,
            "no-components": None,
            "rest": None,
        }
        command.downgrade(alembic_config(url), "0013")
        columns, found = asyncio.run(run(columns_and_triggers))  # type: ignore[misc]
        assert "components_hash" not in columns
        assert found == set(triggers.NAMES)
        upgrade(url)
        assert asyncio.run(run(hashes))["reported"] == "ab" * 32  # type: ignore[index]
    finally:
        if pg_name:
            from tests.support.server import drop_pg_database

            drop_pg_database(pg_name)
