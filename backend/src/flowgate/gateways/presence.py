"""Buffered contact state: heartbeats update memory, a background task writes them in batches.

Every heartbeat (REST or OpAMP) lands here instead of in its own UPDATE, so database writes grow
with the flush rate, not with the number of gateways. A status change (registered -> active,
active -> inactive) wakes the flusher at once; plain ``last_seen`` refreshes wait for the next
periodic flush (``FLOWGATE_FLUSH_INTERVAL_SECONDS``, well inside the 60 s "healthy" window).

Readers never overlay this buffer: the list, its filters, its summary and the detail views all
read the database, so they always agree with each other. What they show is at most one flush
interval old for ``last_seen``, metrics and versions, and a few milliseconds old for status.

A flush that changes statuses publishes one :class:`GatewayStatusChanged` after its commit,
listing the gateways whose new status it actually wrote (live views follow it). The same UPDATE
keeps the stored health true (see :func:`flowgate.gateways.repository.write_presence`); the
health transitions it made (a database trigger records them in ``gateway_health_history``)
are published as one :class:`GatewayHealthChanged` after the commit.

Every buffered value carries the credential (OpAMP token digest) it was accepted with, and the
flush writes it only while the gateway still has that credential (see
:func:`flowgate.gateways.repository.write_presence`), so a heartbeat buffered here can never
undo a deactivation, deletion or re-registration committed anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from flowgate.core import outage
from flowgate.core.background import BackgroundTask, shielded
from flowgate.core.db import utcnow
from flowgate.core.events import GatewayHealthChanged, GatewayStatusChanged, StatusChange
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import repository
from flowgate.gateways.models import GatewayStatus

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """Column values not yet written for one gateway, plus a patch for ``extra_metadata``."""

    guard: str
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def merge(self, newer: Pending) -> None:
        self.guard = newer.guard
        self.values.update(newer.values)
        self.metadata.update(newer.metadata)

    def row(self, gateway_id: uuid.UUID) -> repository.PresenceRow:
        return repository.PresenceRow(gateway_id, self.guard, self.values, self.metadata)


@dataclass
class FlushStats:
    flushes: int = 0
    rows: int = 0
    statements: int = 0
    failures: int = 0
    dropped: int = 0


class Presence:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        interval: float,
        healthy_seconds: float = 60,
        warning_seconds: float = 300,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._interval = interval
        self._thresholds = (healthy_seconds, warning_seconds)
        self._pending: dict[uuid.UUID, Pending] = {}
        #: Status as last written (or loaded), to tell a transition from a refresh.
        self._known_status: dict[uuid.UUID, GatewayStatus] = {}
        self._wake = asyncio.Event()
        self._task = BackgroundTask("presence-flusher")
        self._lock = asyncio.Lock()
        self.stats = FlushStats()

    # -- recording -------------------------------------------------------------------------
    def observe_status(self, gateway_id: uuid.UUID, status: GatewayStatus) -> None:
        """Tell the tracker what the database holds (after loading a row)."""
        pending = self._pending.get(gateway_id)
        if pending is None or "status" not in pending.values:
            self._known_status[gateway_id] = status

    def known_status(self, gateway_id: uuid.UUID) -> GatewayStatus | None:
        pending = self._pending.get(gateway_id)
        if pending is not None and "status" in pending.values:
            status: GatewayStatus = pending.values["status"]
            return status
        return self._known_status.get(gateway_id)

    def record(
        self,
        gateway_id: uuid.UUID,
        guard: str,
        *,
        metadata: dict[str, Any] | None = None,
        urgent: bool = False,
        **values: Any,
    ) -> bool:
        """Buffer new values for a gateway, accepted with credential digest ``guard``. A status
        different from the known one, or ``urgent``, makes the next flush happen now; returns
        whether the status changes (a transition)."""
        if not repository.PRESENCE_COLUMNS.issuperset(values):  # no set built per heartbeat
            unknown = set(values) - repository.PRESENCE_COLUMNS
            raise ValueError(f"not a buffered column: {sorted(unknown)}")
        status = values.get("status")
        transition = status is not None and status != self.known_status(gateway_id)
        if transition:
            urgent = True
            if status == GatewayStatus.active and "active_since" not in values:
                values["active_since"] = values.get("last_seen")
        pending = self._pending.get(gateway_id)
        if pending is None or pending.guard != guard:
            # Values taken under another credential must not ride along with these.
            pending = self._pending[gateway_id] = Pending(guard)
        pending.values.update(values)
        if metadata:
            pending.metadata.update(metadata)
        if urgent:
            self._wake.set()
        return transition

    def pending_for(self, gateway_id: uuid.UUID) -> Pending | None:
        return self._pending.get(gateway_id)

    def forget(self, gateway_id: uuid.UUID) -> None:
        """Drop what is buffered for a gateway (its credential changed or it is gone)."""
        self._pending.pop(gateway_id, None)
        self._known_status.pop(gateway_id, None)

    # -- flushing --------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write everything pending in as few statements as possible. Returns rows written."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                statements = await self._write(batch)
            except Exception as exc:
                self.stats.failures += 1
                if not _refused(exc):
                    if outage.is_unavailable(exc):
                        # Once per outage, not once per flush (every interval while it lasts).
                        outage.tracker.failed(exc, where="presence flush", request=False)
                    else:
                        log.warning(
                            "presence flush failed; will retry",
                            extra={"rows": len(batch), "error": type(exc).__name__},
                        )
                    self._requeue(batch)
                    return 0
                # The database refused the data: write row by row so one bad row cannot hold
                # back every other gateway's heartbeats, and set the refused rows aside.
                log.exception("presence flush refused; retrying row by row")
                batch, statements = await self._write_each(batch)
            for gateway_id, pending in batch.items():
                if "status" in pending.values:
                    self._known_status[gateway_id] = pending.values["status"]
            self.stats.flushes += 1
            self.stats.rows += len(batch)
            self.stats.statements += statements
            return len(batch)

    def _requeue(self, batch: dict[uuid.UUID, Pending]) -> None:
        for gateway_id, older in batch.items():  # keep newer values on top
            newer = self._pending.get(gateway_id)
            if newer is not None:
                if newer.guard != older.guard:
                    continue  # the credential changed since: the older values are void
                older.merge(newer)
            self._pending[gateway_id] = older

    async def _write_each(
        self, batch: dict[uuid.UUID, Pending]
    ) -> tuple[dict[uuid.UUID, Pending], int]:
        written: dict[uuid.UUID, Pending] = {}
        statements = 0
        for gateway_id, pending in batch.items():
            try:
                statements += await self._write({gateway_id: pending})
            except Exception as exc:
                if not _refused(exc):
                    self._requeue({gid: p for gid, p in batch.items() if gid not in written})
                    break
                self.stats.dropped += 1
                log.error(
                    "presence update refused by the database; dropped",
                    extra={"gateway_id": str(gateway_id), "columns": sorted(pending.values)},
                )
            else:
                written[gateway_id] = pending
        return written, statements

    async def _write(self, batch: dict[uuid.UUID, Pending]) -> int:
        rows = [pending.row(gateway_id) for gateway_id, pending in batch.items()]
        async with self._unit_of_work() as uow:
            now = utcnow()
            rule = repository.HealthRule(now, *self._thresholds)
            statements = await repository.write_presence(uow.session, rows, now, rule)
            # The health transitions this write made (recorded by the trigger), announced
            # after the commit.
            changes = await repository.health_changes_at(uow.session, now, list(batch))
            if changes:
                uow.publish(GatewayHealthChanged(changes=tuple(changes)))
        await self._announce_status_changes(batch)
        return statements

    async def _announce_status_changes(self, batch: dict[uuid.UUID, Pending]) -> None:
        """Publish the status transitions in ``batch`` that its write applied, in one event.

        Read back after the write committed (so readers see the write no later than before),
        and kept only where the row still has the credential the values were taken under (the
        write's guard) and holds the new status. A failure here loses the announcement only:
        the write stands, and live views reload on their next change."""
        new_status = {
            gateway_id: pending.values["status"]
            for gateway_id, pending in batch.items()
            if "status" in pending.values
            and pending.values["status"] != self._known_status.get(gateway_id)
        }
        if not new_status:
            return
        try:
            async with self._unit_of_work() as uow:
                rows = await repository.status_rows(uow.session, list(new_status))
                changes = tuple(
                    StatusChange(row.gateway_id, row.org_id, row.status.value, row.last_seen)
                    for row in rows
                    if row.token_digest == batch[row.gateway_id].guard
                    and row.status == new_status[row.gateway_id]
                )
                if changes:
                    uow.publish(GatewayStatusChanged(changes=changes))
        except Exception as exc:
            log.warning(
                "could not announce gateway status changes",
                extra={"gateways": len(new_status), "error": type(exc).__name__},
            )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await shielded(self.flush())

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        """Stop the background task and write what is left (called on shutdown)."""
        await self._task.stop()
        await self.flush()


def _refused(exc: BaseException) -> bool:
    """True when the database (or the driver's bind step) refused the data itself; anything
    else, such as a lost connection or a locked SQLite file, is worth retrying unchanged."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True
    return isinstance(exc, ValueError | TypeError)
