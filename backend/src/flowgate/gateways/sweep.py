"""The health sweep: ages the stored health of gateways that stopped talking, fleet-wide, once
per ``FLOWGATE_HEALTH_SWEEP_SECONDS`` across every replica.

A gateway that goes silent writes nothing, so nothing else would move its stored health from
healthy to warning to unhealthy. Every replica runs this loop; a run starts by claiming the
``health-sweep`` row of ``scheduled_jobs`` (``next_run_at`` passed -> set it one interval ahead)
in the same transaction as the sweep itself, so exactly one replica sweeps per interval (on
PostgreSQL a second claimer waits on the row lock and then finds ``next_run_at`` moved; SQLite
serialises writers), and a sweep that fails rolls its claim back for the next replica.

One run, in the claim's transaction:

1. transitions older than ``FLOWGATE_HEALTH_HISTORY_DAYS`` are pruned;
2. one UPDATE sets the rule's health on (up to ``CHUNK``) gateways whose stored health is out
   of step with the rule at the sweep's ``now`` (found through the (health, status, last_seen)
   index); the trigger records each transition (reason ``silent`` when it only aged, else
   ``reconciled``); more than ``CHUNK`` (a mass event) continue in further transactions;
3. each of those transactions ends by folding the per-organisation count deltas (the
   writers' and its own transitions', two each) into ``gateway_counts``, so counts after a
   mass event read a few rows again at once;

and after each commit its transitions are published as one :class:`GatewayHealthChanged`.
Exactly once holds per transition whatever the timing: the trigger records a change only when
the row's stored health actually changes, and each row is updated under its row lock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.events import GatewayHealthChanged, HealthChange
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import repository
from flowgate.gateways.models import ScheduledJob

log = logging.getLogger(__name__)

JOB = "health-sweep"
#: Gateways one sweep statement rewrites at most (one transaction each).
CHUNK = 2000
#: Chunks one run goes on to (the next run continues after that).
MAX_CHUNKS = 200


@dataclass(frozen=True)
class SweepResult:
    at: datetime
    changes: tuple[HealthChange, ...]
    pruned: int


class HealthSweep:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        interval: float,
        healthy_seconds: float,
        warning_seconds: float,
        history_days: float,
    ) -> None:
        self._unit_of_work = unit_of_work
        self.interval = interval
        self._thresholds = (healthy_seconds, warning_seconds)
        self._retention = timedelta(days=history_days)
        self.instance = uuid.uuid4().hex
        self._task = BackgroundTask("health-sweep")
        self.runs = 0

    async def run_once(self, *, force: bool = False) -> SweepResult | None:
        """Sweep if this replica wins the claim (``force``: whatever ``next_run_at`` says, still
        one at a time); None when another replica swept within the interval."""
        async with self._unit_of_work() as uow:
            now = utcnow()
            if not await self._claim(uow.session, now, force):
                return None
            pruned = await repository.prune_health_history(uow.session, now - self._retention)
            changes, full = await self._chunk(uow, now)
        # A mass event (a whole site went silent) is swept in chunks of CHUNK rows, one
        # transaction each, so no presence flush waits long for the rows it writes.
        for _ in range(MAX_CHUNKS):
            if not full:
                break
            async with self._unit_of_work() as uow:
                more, full = await self._chunk(uow, utcnow())
            changes += more
        self.runs += 1
        if changes or pruned:
            log.info("health sweep", extra={"transitions": len(changes), "pruned": pruned})
        return SweepResult(now, tuple(changes), pruned)

    async def _chunk(self, uow: UnitOfWork, now: datetime) -> tuple[list[HealthChange], bool]:
        rule = repository.HealthRule(now, *self._thresholds)
        swept = await repository.sweep_health(uow.session, rule, CHUNK)
        changes = await repository.health_changes_at(uow.session, now) if swept else []
        # Fold the count deltas, this chunk's own included: after a mass event every count
        # and summary would otherwise add up two per transition until the next run.
        await repository.compact_counts(uow.session)
        if changes:
            uow.publish(GatewayHealthChanged(changes=tuple(changes)))
        return changes, swept >= CHUNK

    async def _claim(self, session: AsyncSession, now: datetime, force: bool) -> bool:
        stmt = (
            update(ScheduledJob)
            .where(ScheduledJob.name == JOB)
            .values(
                next_run_at=now + timedelta(seconds=self.interval),
                last_run_at=now,
                last_run_by=self.instance,
            )
            .returning(ScheduledJob.name)
            .execution_options(synchronize_session=False)
        )
        if not force:
            stmt = stmt.where(
                or_(ScheduledJob.next_run_at.is_(None), ScheduledJob.next_run_at <= now)
            )
        if (await session.execute(stmt)).first() is not None:
            return True
        exists = await session.scalar(select(ScheduledJob.name).where(ScheduledJob.name == JOB))
        if exists is not None:
            return False
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(insert(ScheduledJob).values(name=JOB).on_conflict_do_nothing())
        return (await session.execute(stmt)).first() is not None

    async def _run(self) -> None:
        # Wake twice per interval: whichever replica finds the interval passed sweeps.
        while True:
            await asyncio.sleep(self.interval / 2)
            await background.step(self.run_once, where="health sweep")

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()
