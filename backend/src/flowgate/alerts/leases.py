"""Named leases in the database: one replica at a time holds one, renewing it as it works.

Claiming is a single UPDATE of the lease row (inserted on first use), in the caller's
transaction: on PostgreSQL a second replica's UPDATE waits for the first one's transaction and
then finds the lease taken; on SQLite the write lock serialises them. Whoever holds the lease
does its work in the same transaction, so work done under a lease is never done twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.alerts.models import AlertLease


async def claim(
    session: AsyncSession, name: str, owner: str, now: datetime, seconds: float
) -> bool:
    """Take or renew lease ``name`` for ``owner`` until ``now + seconds``; False when another
    owner holds it (until it lapses)."""
    until = now + timedelta(seconds=seconds)
    for _ in range(2):
        claimed = await session.execute(
            update(AlertLease)
            .where(
                AlertLease.name == name,
                or_(AlertLease.until.is_(None), AlertLease.until < now, AlertLease.owner == owner),
            )
            .values(owner=owner, until=until)
            .returning(AlertLease.name)
            .execution_options(synchronize_session=False)
        )
        if claimed.first() is not None:
            return True
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        created = await session.execute(
            insert(AlertLease)
            .values(name=name, owner=None, until=None)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(AlertLease.name)
        )
        if created.first() is None:
            return False  # the row exists and someone else holds the lease
    return False


async def release(session: AsyncSession, name: str, owner: str) -> None:
    await session.execute(
        update(AlertLease)
        .where(AlertLease.name == name, AlertLease.owner == owner)
        .values(owner=None, until=None)
        .execution_options(synchronize_session=False)
    )
