"""Pruning the audit log: entries older than ``FLOWGATE_AUDIT_RETENTION_DAYS`` are deleted.

Every replica runs the pruner; one prunes at a time: the holder of the lease in the one row of
``audit_lease`` (made by the migration; claimed with a conditional UPDATE like the rollout
driver's deployment leases, taken over when it lapses), and only if nobody pruned within the
last interval, so the log is pruned once per interval across the fleet. Deletes go in chunks
so no statement holds locks for long.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from flowgate.audit.models import AuditEntry, AuditLease
from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.uow import UnitOfWork

log = logging.getLogger(__name__)

LEASE_ROW = 1
CHUNK = 5_000


class AuditPruner:
    def __init__(
        self, unit_of_work: Callable[[], UnitOfWork], retention_days: int, interval: float
    ) -> None:
        self._unit_of_work = unit_of_work
        self.retention_days = retention_days
        self.interval = interval
        self.instance = uuid.uuid4().hex
        self._task = BackgroundTask("audit-pruner")

    async def _claim(self) -> bool:
        """Take the lease when it is free or ours and the last prune is an interval old."""
        now = utcnow()
        due = now - timedelta(seconds=self.interval)
        async with self._unit_of_work() as uow:
            claimed = await uow.session.execute(
                update(AuditLease)
                .where(
                    AuditLease.id == LEASE_ROW,
                    or_(AuditLease.until.is_(None), AuditLease.until < now),
                    or_(AuditLease.pruned_at.is_(None), AuditLease.pruned_at <= due),
                )
                .values(owner=self.instance, until=now + timedelta(seconds=max(60, self.interval)))
                .returning(AuditLease.id)
                .execution_options(synchronize_session=False)
            )
            return claimed.first() is not None

    async def prune(self) -> int | None:
        """Delete what is past retention if this replica holds the lease; the rows deleted,
        None when another replica has the job (or pruned recently)."""
        if self.retention_days <= 0 or not await self._claim():
            return None
        cutoff = utcnow() - timedelta(days=self.retention_days)
        deleted = 0
        while True:
            async with self._unit_of_work() as uow:
                ids = select(AuditEntry.id).where(AuditEntry.at < cutoff).limit(CHUNK)
                result = await uow.session.execute(
                    delete(AuditEntry)
                    .where(AuditEntry.id.in_(ids.scalar_subquery()))
                    .execution_options(synchronize_session=False)
                )
                count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < CHUNK:
                break
        async with self._unit_of_work() as uow:
            await uow.session.execute(
                update(AuditLease)
                .where(AuditLease.id == LEASE_ROW, AuditLease.owner == self.instance)
                .values(owner=None, until=None, pruned_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        if deleted:
            log.info("audit log pruned", extra={"deleted": deleted, "days": self.retention_days})
        return deleted

    async def _run(self) -> None:
        # Replicas (and workers) starting together do not all reach for the lease at once.
        await asyncio.sleep(random.uniform(0, min(30.0, self.interval)))
        while True:
            await background.step(self.prune, where="audit pruner")
            # Check well within the interval: the lease, not this timer, decides who prunes.
            await asyncio.sleep(min(self.interval, 300))

    def start(self) -> None:
        if self.retention_days > 0:
            self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()
