"""The rollout driver: advances staged and all-at-once deployments, from the database.

Every replica runs the driver; each deployment is driven by one replica at a time, the holder
of its lease (a row-level claim on ``deployments`` renewed every tick, taken over by another
replica when it lapses). Nothing lives only in the memory of a process, so a replica that
restarts mid-rollout, or dies, leaves the rollout to be resumed by whoever holds the lease
next (within ``LEASE_SECONDS``).

Rules, checked every ``FLOWGATE_ROLLOUT_TICK_SECONDS``:
- staged: more than ``max_failed`` failed gateways, or a batch not settled within
  ``batch_timeout_seconds`` (offline gateways count as not settled) -> ``failed``, and with
  ``auto_rollback`` a rollback of every gateway it reached. A settled batch (every gateway
  applied, failed or superseded) -> the next batch is sent; after the last -> ``completed``.
- all at once: every gateway settled -> ``completed`` when none failed, else ``failed`` (and
  rolled back with ``auto_rollback``).
- ``pending`` (created by the CLI): the first batch is sent.
- ``paused``, ``cancelled`` and finished deployments are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select, update

from flowgate.configs.models import Deployment, DeploymentState, TargetState
from flowgate.core import background, outage
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.events import DeploymentProgressed
from flowgate.core.uow import UnitOfWork
from flowgate.deployments import service as deployments
from flowgate.deployments.locking import lock_org

log = logging.getLogger(__name__)

LEASE_SECONDS = 10.0
OPEN = (TargetState.pending, TargetState.sent, TargetState.applying)
#: Deployments the driver works on: pending ones (created by the CLI) get their first batch.
DRIVEN = (DeploymentState.pending, DeploymentState.rolling_out)


class RolloutDriver:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], interval: float) -> None:
        self._unit_of_work = unit_of_work
        self._interval = interval
        self.instance = uuid.uuid4().hex
        self._task = BackgroundTask("rollout-driver")
        self._wake = asyncio.Event()
        self._last_counts: dict[uuid.UUID, dict[int, dict[TargetState, int]]] = {}

    def wake(self) -> None:
        """Check now (an agent reported, a deployment was created)."""
        self._wake.set()

    async def tick(self) -> int:
        """Advance every rolling-out deployment this replica can lease; returns how many."""
        async with self._unit_of_work() as uow:
            ids = list(
                await uow.session.scalars(
                    select(Deployment.id)
                    .where(Deployment.state.in_(DRIVEN))
                    .order_by(Deployment.created_at)
                    .limit(500)
                )
            )
        driven = 0
        for deployment_id in ids:
            try:
                async with self._unit_of_work() as uow:
                    if await self._advance(uow, deployment_id):
                        driven += 1
            except Exception as exc:
                if outage.is_unavailable(exc):
                    raise  # the database went away: the next tick retries
                log.exception(
                    "advancing a deployment failed", extra={"deployment_id": str(deployment_id)}
                )
        return driven

    async def _claim(self, uow: UnitOfWork, deployment_id: uuid.UUID) -> Deployment | None:
        now = utcnow()
        claimed = await uow.session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.state.in_(DRIVEN),
                or_(
                    Deployment.lease_until.is_(None),
                    Deployment.lease_until < now,
                    Deployment.lease_owner == self.instance,
                ),
            )
            .values(lease_owner=self.instance, lease_until=now + timedelta(seconds=LEASE_SECONDS))
            .returning(Deployment.id)
            .execution_options(synchronize_session=False)
        )
        if claimed.first() is None:
            return None
        return await uow.session.get(Deployment, deployment_id, populate_existing=True)

    async def _advance(self, uow: UnitOfWork, deployment_id: uuid.UUID) -> bool:
        deployment = await self._claim(uow, deployment_id)
        if deployment is None:
            return False
        session = uow.session
        if deployment.state == DeploymentState.pending:
            await lock_org(session, deployment.org_id)
            await deployments.send_batch(uow, deployment, 0)
            await deployments.set_state(uow, deployment, DeploymentState.rolling_out)
            return True
        by_batch = await deployments.batch_counts(session, deployment.id)
        if by_batch != self._last_counts.get(deployment.id):
            self._last_counts[deployment.id] = by_batch
            uow.publish(DeploymentProgressed(deployment_id=deployment.id, org_id=deployment.org_id))
        staged = deployment.strategy.get("type") == "staged"
        failed = sum(c.get(TargetState.failed, 0) for c in by_batch.values())
        current = by_batch.get(deployment.current_batch, {})
        still_open = sum(current.get(s, 0) for s in OPEN)
        if staged:
            max_failed = int(deployment.strategy.get("max_failed", 0))
            if failed > max_failed:
                await self._stop(
                    uow,
                    deployment,
                    f"{failed} gateway(s) failed to apply (max_failed {max_failed})",
                )
                return True
        if still_open == 0:
            if deployment.current_batch + 1 < deployment.batch_count:
                await lock_org(session, deployment.org_id)
                await deployments.send_batch(uow, deployment, deployment.current_batch + 1)
                log.info(
                    "rollout batch sent",
                    extra={
                        "deployment_id": str(deployment.id),
                        "batch": deployment.current_batch,
                    },
                )
            elif failed and not staged:
                await self._stop(uow, deployment, f"{failed} gateway(s) failed to apply")
            else:
                await deployments.set_state(uow, deployment, DeploymentState.completed)
                self._last_counts.pop(deployment.id, None)
            return True
        if staged and deployment.batch_started_at is not None:
            timeout = float(deployment.strategy.get("batch_timeout_seconds", 300))
            if utcnow() - deployment.batch_started_at > timedelta(seconds=timeout):
                await self._stop(
                    uow,
                    deployment,
                    f"batch {deployment.current_batch + 1} timed out: {still_open} gateway(s) "
                    f"did not apply within {timeout:g} s",
                )
        return True

    async def _stop(self, uow: UnitOfWork, deployment: Deployment, reason: str) -> None:
        await deployments.set_state(uow, deployment, DeploymentState.failed, reason)
        self._last_counts.pop(deployment.id, None)
        if deployment.auto_rollback:
            await deployments.rollback(uow, deployment, reason, None)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await background.step(self.tick, where="rollout driver")

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        """Stop driving, and hand back the leases held here so another replica (or this one
        restarted) takes the rollouts over at once instead of after ``LEASE_SECONDS``."""
        await self._task.stop()
        try:
            async with self._unit_of_work() as uow:
                await uow.session.execute(
                    update(Deployment)
                    .where(Deployment.lease_owner == self.instance)
                    .values(lease_owner=None, lease_until=None)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.warning("could not release rollout leases; they lapse on their own", exc_info=False)
