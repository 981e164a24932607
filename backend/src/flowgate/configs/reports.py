"""What gateways report about the configuration they were sent, turned into rollout states.

Native agents report ``RemoteConfigStatus`` (APPLYING / APPLIED / FAILED with the config hash);
REST gateways report the ``config_version`` they run (and a ``config_status``) in heartbeats.
Either lands here in memory, costs no database round trip, and is written in batches: each
report moves the gateway's target in the deployment that owns its assignment, if the version
it names is the one that deployment sent it (an old report cannot mark a new rollout applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, literal_column, or_, select, update

from flowgate import telemetry
from flowgate.configs.base import base_config_yaml, config_hash
from flowgate.configs.models import Assignment, ConfigVersion, DeploymentTarget, TargetState
from flowgate.core import outage
from flowgate.core.db import utcnow
from flowgate.core.uow import UnitOfWork

log = logging.getLogger(__name__)

#: Which states a report may move a target out of, per reported state.
_FROM: dict[TargetState, tuple[TargetState, ...]] = {
    TargetState.applying: (TargetState.sent,),
    TargetState.applied: (TargetState.sent, TargetState.applying, TargetState.failed),
    TargetState.failed: (TargetState.sent, TargetState.applying, TargetState.applied),
}


@dataclass(frozen=True)
class Report:
    gateway_id: uuid.UUID
    state: TargetState
    #: What the gateway names: the config hash (OpAMP) or the template version (REST).
    config_hash: str | None = None
    version: int | None = None
    error_message: str | None = None


class RolloutReports:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        interval: float,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._interval = interval
        self._on_written = on_written
        self._pending: dict[uuid.UUID, Report] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.written = 0

    def record(self, report: Report) -> None:
        """Keep the newest report per gateway; the next flush writes it."""
        if report.state not in _FROM:
            return
        self._pending[report.gateway_id] = report
        self._wake.set()

    async def flush(self) -> int:
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                async with self._unit_of_work() as uow:
                    await _write(uow, list(batch.values()))
            except Exception as exc:
                if outage.is_unavailable(exc):  # logged once per outage, by the tracker
                    outage.tracker.failed(exc, where="rollout reports", request=False)
                else:
                    log.warning("writing rollout reports failed; will retry", exc_info=True)
                for gid, report in batch.items():
                    self._pending.setdefault(gid, report)
                return 0
            self.written += len(batch)
        if self._on_written is not None:
            self._on_written()
        return len(batch)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval * 10)
            await asyncio.sleep(self._interval)  # gather what else arrives meanwhile
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rollout-reports")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


async def _write(uow: UnitOfWork, reports: list[Report]) -> None:
    table = cast(Table, DeploymentTarget.__table__)
    owner = (
        select(Assignment.deployment_id)
        .where(Assignment.gateway_id == table.c.gateway_id)
        .scalar_subquery()
    )
    version_hash = (
        select(ConfigVersion.config_hash)
        .where(ConfigVersion.id == table.c.to_version_id)
        .scalar_subquery()
    )
    version_number = (
        select(ConfigVersion.version)
        .where(ConfigVersion.id == table.c.to_version_id)
        .scalar_subquery()
    )
    base_hash = config_hash(base_config_yaml())
    groups: dict[tuple[TargetState, bool], list[dict[str, Any]]] = {}
    now = utcnow()
    for r in reports:
        by_hash = r.config_hash is not None
        groups.setdefault((r.state, by_hash), []).append(
            {
                "b_gateway": r.gateway_id,
                "b_match": r.config_hash if by_hash else r.version,
                "state": r.state.value,
                "error_message": (r.error_message or None)
                if r.state == TargetState.failed
                else None,
                "updated_at": now,
            }
        )
    for (state, by_hash), params in groups.items():
        if by_hash:
            matches = func.coalesce(version_hash, base_hash) == bindparam("b_match")
        else:
            matches = or_(
                version_number == bindparam("b_match"),
                and_(table.c.to_version_id.is_(None), bindparam("b_match").is_(None)),
            )
        stmt = (
            update(table)
            .where(
                table.c.gateway_id == bindparam("b_gateway"),
                table.c.deployment_id == owner,
                # Spelled out: an expanding IN cannot be used with executemany.
                or_(*(table.c.state == literal_column(f"'{s.value}'") for s in _FROM[state])),
                matches,
            )
            .values(
                state=bindparam("state"),
                error_message=bindparam("error_message"),
                updated_at=bindparam("updated_at"),
            )
        )
        await uow.session.execute(stmt, params)
        if state in (TargetState.applied, TargetState.failed):  # reported outcomes
            uow.after_commit(
                functools.partial(telemetry.ROLLOUT_TARGETS.inc, state.value, amount=len(params))
            )
