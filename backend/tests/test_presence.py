"""The presence flusher against a real database: batching, one bad row, and an outage."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from flowgate.core.db import Database, utcnow
from flowgate.core.migrate import upgrade
from flowgate.fleet.presence import Presence
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.orgs.models import Organization


async def seeded(tmp_path: Path, n: int) -> tuple[Database, list[uuid.UUID]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    db = Database(url)
    async with db.sessionmaker() as session:
        org = Organization(name="o")
        session.add(org)
        await session.flush()
        gateways = [Gateway(org_id=org.id, instance_id=f"g{i}", name=f"g{i}") for i in range(n)]
        session.add_all(gateways)
        await session.commit()
        return db, [g.id for g in gateways]


async def last_seen(db: Database) -> dict[uuid.UUID, datetime | None]:
    async with db.sessionmaker() as session:
        rows = await session.execute(select(Gateway.id, Gateway.last_seen))
        return dict(rows.all())


async def test_many_heartbeats_one_statement(tmp_path: Path) -> None:
    db, ids = await seeded(tmp_path, 50)
    presence = Presence(db.sessionmaker, interval=60)
    now = utcnow()
    for beat in range(10):
        for gid in ids:
            presence.record(gid, last_seen=now + timedelta(seconds=beat))
    assert await presence.flush() == 50
    assert presence.stats.statements == 1  # one executemany for 500 heartbeats
    stored = await last_seen(db)
    assert all(stored[g] == now + timedelta(seconds=9) for g in ids)
    await db.dispose()


async def test_a_refused_row_does_not_hold_back_the_others(tmp_path: Path) -> None:
    db, ids = await seeded(tmp_path, 3)
    presence = Presence(db.sessionmaker, interval=60)
    now = utcnow()
    presence.record(ids[0], last_seen=now)
    presence.record(ids[1], last_seen=datetime(2026, 1, 1))  # naive: refused at bind time
    presence.record(ids[2], last_seen=now, status=GatewayStatus.active)
    await presence.flush()
    stored = await last_seen(db)
    assert stored[ids[0]] == now and stored[ids[2]] == now
    assert stored[ids[1]] is None
    assert presence.stats.dropped == 1
    assert presence.pending_for(ids[1]) is None  # set aside, not retried forever
    await db.dispose()


async def test_unreachable_database_keeps_everything_for_later(tmp_path: Path) -> None:
    db, ids = await seeded(tmp_path, 2)
    broken = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    presence = Presence(broken.sessionmaker, interval=60)
    now = utcnow()
    for gid in ids:
        presence.record(gid, last_seen=now)
    assert await presence.flush() == 0
    assert presence.stats.failures == 1 and presence.stats.dropped == 0
    assert all(presence.pending_for(g) is not None for g in ids)
    # The database is back (here: the flusher is pointed at the real one): nothing was lost.
    presence._sessionmaker = db.sessionmaker
    assert await presence.flush() == 2
    assert set((await last_seen(db)).values()) == {now}
    await broken.dispose()
    await db.dispose()
