"""The organisation's rollout lock: deployments, batch sends and rollbacks of one organisation
happen one at a time, so assignments and rollout states never disagree."""

from __future__ import annotations

import uuid

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.orgs.models import Organization

#: A namespace for the advisory lock keys (PostgreSQL), so they do not collide with others.
_NAMESPACE = 0x46475244  # "FGRD"


async def lock_org(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Hold the lock until the transaction ends.

    PostgreSQL: a transaction-level advisory lock keyed by the organisation. SQLite: a write to
    the organisation's row, which takes the database's write lock now rather than at the
    first real write (a deferred transaction that read first could otherwise find its snapshot
    stale at commit time).
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        key = int.from_bytes(org_id.bytes[:4], "big", signed=True)
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": _NAMESPACE, "key": key}
        )
        return
    await session.execute(
        update(Organization)
        .where(Organization.id == org_id)
        .values(name=Organization.name)
        .execution_options(synchronize_session=False)
    )
