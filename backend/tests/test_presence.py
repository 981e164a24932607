"""The presence flusher against a real database: batching, one bad row, an outage, and the
credential guard that keeps a buffered heartbeat from undoing a revocation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from flowgate.core.db import Database, utcnow
from flowgate.core.migrate import upgrade
from flowgate.core.uow import unit_of_work_factory
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.gateways.presence import Presence
from flowgate.orgs.models import Organization
from tests.conftest import BACKENDS, database_for
from tests.support.server import drop_pg_database

TOKEN = "d" * 64


def presence_for(db: Database) -> Presence:
    return Presence(unit_of_work_factory(db.sessionmaker), interval=60)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database on each backend: PostgreSQL writes presence set-based (one UPDATE
    over arrays per column set), SQLite row by row, and both must keep every rule here."""
    url, pg_name = database_for(str(request.param), tmp_path)
    try:
        yield url or f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    finally:
        if pg_name:
            drop_pg_database(pg_name)


async def seeded(url: str, n: int) -> tuple[Database, list[uuid.UUID]]:
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    db = Database(url)
    async with db.sessionmaker() as session:
        org = Organization(name="o")
        session.add(org)
        await session.flush()
        gateways = [
            Gateway(org_id=org.id, instance_id=f"g{i}", name=f"g{i}", opamp_token=TOKEN)
            for i in range(n)
        ]
        session.add_all(gateways)
        await session.commit()
        return db, [g.id for g in gateways]


async def last_seen(db: Database) -> dict[uuid.UUID, datetime | None]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Gateway.id, Gateway.last_seen))
        return dict(rows.all())


async def test_many_heartbeats_one_statement(database_url: str) -> None:
    db, ids = await seeded(database_url, 50)
    presence = presence_for(db)
    now = utcnow()
    for beat in range(10):
        for gid in ids:
            presence.record(gid, TOKEN, last_seen=now + timedelta(seconds=beat))
    assert await presence.flush() == 50
    assert presence.stats.statements == 1  # 500 heartbeats: one statement on either database
    stored = await last_seen(db)
    assert all(stored[g] == now + timedelta(seconds=9) for g in ids)
    await db.dispose()


async def test_a_refused_row_does_not_hold_back_the_others(database_url: str) -> None:
    db, ids = await seeded(database_url, 3)
    presence = presence_for(db)
    now = utcnow()
    presence.record(ids[0], TOKEN, last_seen=now)
    presence.record(ids[1], TOKEN, last_seen=datetime(2026, 1, 1))  # naive: refused at bind time
    presence.record(ids[2], TOKEN, last_seen=now, status=GatewayStatus.active)
    await presence.flush()
    stored = await last_seen(db)
    assert stored[ids[0]] == now and stored[ids[2]] == now
    assert stored[ids[1]] is None
    assert presence.stats.dropped == 1
    assert presence.pending_for(ids[1]) is None  # set aside, not retried forever
    await db.dispose()


async def test_unreachable_database_keeps_everything_for_later(database_url: str) -> None:
    db, ids = await seeded(database_url, 2)
    broken = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    presence = presence_for(broken)
    now = utcnow()
    for gid in ids:
        presence.record(gid, TOKEN, last_seen=now)
    assert await presence.flush() == 0
    assert presence.stats.failures == 1 and presence.stats.dropped == 0
    assert all(presence.pending_for(g) is not None for g in ids)
    # The database is back (here: the flusher is pointed at the real one): nothing was lost.
    presence._unit_of_work = unit_of_work_factory(db.sessionmaker)
    assert await presence.flush() == 2
    assert set((await last_seen(db)).values()) == {now}
    await broken.dispose()
    await db.dispose()


async def test_a_buffered_heartbeat_never_undoes_a_revocation(database_url: str) -> None:
    """Values taken under a credential are written only while the gateway still has it."""
    db, ids = await seeded(database_url, 3)
    presence = presence_for(db)
    now = utcnow()
    for gid in ids:
        presence.record(gid, TOKEN, last_seen=now, status=GatewayStatus.active)
    async with db.sessionmaker() as session:  # committed elsewhere after the heartbeats
        await session.execute(
            update(Gateway)
            .where(Gateway.id == ids[0])
            .values(status=GatewayStatus.inactive, opamp_token=None)
        )
        await session.execute(
            update(Gateway).where(Gateway.id == ids[1]).values(opamp_token="e" * 64)
        )
        await session.commit()
    assert await presence.flush() == 3
    async with db.sessionmaker() as session:
        rows = dict((await session.execute(select(Gateway.id, Gateway.status))).all())
    assert rows[ids[0]] == GatewayStatus.inactive  # deactivated: not resurrected
    assert rows[ids[1]] == GatewayStatus.registered  # re-registered: old values dropped
    assert rows[ids[2]] == GatewayStatus.active
    stored = await last_seen(db)
    assert stored[ids[0]] is None and stored[ids[1]] is None and stored[ids[2]] == now
    await db.dispose()


async def test_values_under_a_new_credential_replace_older_ones(database_url: str) -> None:
    db, ids = await seeded(database_url, 1)
    presence = presence_for(db)
    presence.record(ids[0], "old" * 20, last_seen=utcnow(), metadata={"version": "old"})
    presence.record(ids[0], TOKEN, last_seen=utcnow())
    pending = presence.pending_for(ids[0])
    assert pending is not None and pending.guard == TOKEN and not pending.metadata
    await db.dispose()
