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

from sqlalchemy import Table, and_, bindparam, case, func, literal_column, or_, select, update

from flowgate import telemetry
from flowgate.configs.assignments import chunks
from flowgate.configs.base import base_config_yaml, config_hash
from flowgate.configs.models import Assignment, ConfigVersion, DeploymentTarget, TargetState
from flowgate.core import bulk, outage
from flowgate.core.background import BackgroundTask, shielded
from flowgate.core.db import utcnow
from flowgate.core.events import DeploymentProgressed
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
        self._task = BackgroundTask("rollout-reports")
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
                    moved = await _write(uow, list(batch.values()))
                    # Once per deployment and flush, after the commit: the event stream and
                    # the UI follow a 10k rollout without an event per gateway.
                    for deployment_id, org_id in sorted(moved):
                        uow.publish(
                            DeploymentProgressed(deployment_id=deployment_id, org_id=org_id)
                        )
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
        backlog = False
        while True:
            if not backlog:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval * 10)
                await asyncio.sleep(self._interval)  # gather what else arrives meanwhile
            self._wake.clear()
            written = await shielded(self.flush())
            # Reports that arrived while a flush was writing have waited as long as it took:
            # write them at once (a 10k rollout's reports then go out in back-to-back flushes,
            # each as large as what came in during the last). After a failed flush, wait.
            backlog = written > 0 and bool(self._pending)

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()
        await self.flush()


async def _write(uow: UnitOfWork, reports: list[Report]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Move the targets the reports name; returns the (deployment, org) pairs that moved."""
    for outcome in (TargetState.applied, TargetState.failed):  # reported outcomes
        reported = sum(1 for r in reports if r.state == outcome)
        if reported:
            uow.after_commit(
                functools.partial(telemetry.ROLLOUT_TARGETS.inc, outcome.value, amount=reported)
            )
    if bulk.is_postgres(uow.session):
        return await _write_set_based(uow, reports)
    return await _write_rows(uow, reports)


def _guards(table: Table) -> tuple[Any, Any, Any]:
    """The deployment that owns the target's gateway, and the hash and number of the version
    the target was sent (correlated to ``table``)."""
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
    return owner, version_hash, version_number


async def _write_set_based(
    uow: UnitOfWork, reports: list[Report]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """PostgreSQL: every report in one ``UPDATE ... FROM unnest(...)``."""
    table = cast(Table, DeploymentTarget.__table__)
    owner, version_hash, version_number = _guards(table)
    r = bulk.unnest(
        "r",
        gateway_id=("uuid", [x.gateway_id for x in reports]),
        state=("text", [x.state.value for x in reports]),
        hash=("text", [x.config_hash for x in reports]),
        version=("int", [x.version if x.config_hash is None else None for x in reports]),
        error=(
            "text",
            [(x.error_message or None) if x.state == TargetState.failed else None for x in reports],
        ),
    )
    allowed = or_(
        *(
            and_(
                r.c.state == state.value,
                table.c.state.in_([s.value for s in sources]),
            )
            for state, sources in _FROM.items()
        )
    )
    matches = case(
        (
            r.c.hash.is_not(None),
            func.coalesce(version_hash, config_hash(base_config_yaml())) == r.c.hash,
        ),
        else_=or_(
            version_number == r.c.version,
            and_(table.c.to_version_id.is_(None), r.c.version.is_(None)),
        ),
    )
    stmt = (
        update(table)
        .where(table.c.gateway_id == r.c.gateway_id, table.c.deployment_id == owner)
        .where(allowed, matches)
        .values(state=r.c.state, error_message=r.c.error, updated_at=utcnow())
        .returning(table.c.deployment_id, table.c.org_id)
    )
    rows = (await uow.session.execute(stmt)).all()
    return {(did, oid) for did, oid in rows}


async def _write_rows(uow: UnitOfWork, reports: list[Report]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """SQLite: one guarded UPDATE per report state and kind, run with executemany."""
    table = cast(Table, DeploymentTarget.__table__)
    owner, version_hash, version_number = _guards(table)
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
    # Which deployments moved: the rows this flush stamped (one timestamp for all of them).
    moved: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for ids in chunks([r.gateway_id for r in reports]):
        rows = await uow.session.execute(
            select(table.c.deployment_id, table.c.org_id)
            .where(table.c.gateway_id.in_(ids), table.c.updated_at == now)
            .distinct()
        )
        moved.update((did, oid) for did, oid in rows.all())
    return moved
