"""Buffered contact state: heartbeats update memory, a background task writes them in batches.

Every heartbeat (REST or OpAMP) lands here instead of in its own UPDATE, so database writes grow
with the flush rate, not with the number of gateways. A status change (registered -> active,
active -> inactive) wakes the flusher at once; plain ``last_seen`` refreshes wait for the next
periodic flush (``FLOWGATE_FLUSH_INTERVAL_SECONDS``, well inside the 60 s "healthy" window).

Readers on this replica overlay pending values on what they load (:meth:`Presence.pending_for`),
so the API never shows state older than what this replica has already accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import async_sessionmaker

from flowgate.core import outage
from flowgate.core.db import utcnow
from flowgate.gateways.models import Gateway, GatewayStatus

log = logging.getLogger(__name__)

_COLUMNS = (
    "last_seen",
    "status",
    "active_since",
    "current_config_version",
    "opamp_state",
    "transport",
    "opamp_instance_uid",
)


@dataclass
class Pending:
    """Column values not yet written for one gateway, plus a patch for ``extra_metadata``."""

    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def merge(self, newer: Pending) -> None:
        self.values.update(newer.values)
        self.metadata.update(newer.metadata)


@dataclass
class FlushStats:
    flushes: int = 0
    rows: int = 0
    statements: int = 0
    failures: int = 0
    dropped: int = 0


class PresenceView:
    """Buffered values as of one moment (see :meth:`Presence.view`)."""

    def __init__(
        self,
        presence: Presence,
        in_flight: dict[uuid.UUID, Pending],
        pending: dict[uuid.UUID, Pending],
    ) -> None:
        self._presence = presence
        self._layers = (in_flight, pending)  # oldest first

    def apply_to(self, gateway: Gateway) -> Gateway:
        """Overlay the captured values on a loaded row, in memory only (a view, not a write)."""
        self._presence.observe_status(gateway.id, gateway.status)
        for layer in self._layers:
            pending = layer.get(gateway.id)
            if pending is None:
                continue
            for key, value in pending.values.items():
                gateway.__dict__[key] = value  # bypass change tracking: never flushed from here
            if pending.metadata:
                merged = {**(gateway.extra_metadata or {}), **pending.metadata}
                gateway.__dict__["extra_metadata"] = merged
        return gateway


class Presence:
    def __init__(self, sessionmaker: async_sessionmaker[Any], interval: float) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval
        self._pending: dict[uuid.UUID, Pending] = {}
        #: The batch being written: still overlaid on reads until its transaction commits.
        self._in_flight: dict[uuid.UUID, Pending] = {}
        #: Status as last written (or loaded), to tell a transition from a refresh.
        self._known_status: dict[uuid.UUID, GatewayStatus] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
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
        *,
        metadata: dict[str, Any] | None = None,
        urgent: bool = False,
        **values: Any,
    ) -> None:
        """Buffer new values for a gateway. A status different from the known one, or
        ``urgent``, makes the next flush happen now."""
        unknown = set(values) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"not a buffered column: {sorted(unknown)}")
        status = values.get("status")
        if status is not None and status != self.known_status(gateway_id):
            urgent = True
            if status == GatewayStatus.active and "active_since" not in values:
                values["active_since"] = values.get("last_seen")
        pending = self._pending.setdefault(gateway_id, Pending())
        pending.values.update(values)
        if metadata:
            pending.metadata.update(metadata)
        if urgent:
            self._wake.set()

    def pending_for(self, gateway_id: uuid.UUID) -> Pending | None:
        return self._pending.get(gateway_id)

    def forget(self, gateway_id: uuid.UUID) -> None:
        self._pending.pop(gateway_id, None)
        self._known_status.pop(gateway_id, None)

    def view(self) -> PresenceView:
        """Capture what is buffered now. Take it *before* loading rows and apply it after:
        a flush that commits in between then cannot make the loaded rows look older than
        what this replica had already accepted (the captured batch is still applied)."""
        return PresenceView(self, self._in_flight, self._pending)

    def apply_to(self, gateway: Gateway) -> Gateway:
        """Overlay buffered values on a row loaded after this call's view would have been
        taken; prefer ``view()`` before the query and ``view.apply_to`` after it."""
        return self.view().apply_to(gateway)

    # -- flushing --------------------------------------------------------------------------
    async def flush(self) -> int:
        """Write everything pending in as few statements as possible. Returns rows written."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            self._in_flight = batch
            try:
                statements = await self._write(batch)
            except Exception as exc:
                self.stats.failures += 1
                if not _refused(exc):
                    self._in_flight = {}
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
            self._in_flight = {}
            if statements:
                outage.tracker.succeeded()
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
        table = cast(Table, Gateway.__table__)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        async with self._sessionmaker() as session:
            with_metadata = [gid for gid, p in batch.items() if p.metadata]
            current: dict[uuid.UUID, dict[str, Any]] = {}
            for start in range(0, len(with_metadata), 1000):
                chunk = with_metadata[start : start + 1000]
                rows = await session.execute(
                    select(Gateway.id, Gateway.extra_metadata).where(Gateway.id.in_(chunk))
                )
                current.update({gid: meta or {} for gid, meta in rows.all()})
            for gateway_id, pending in batch.items():
                row = dict(pending.values)
                if pending.metadata:
                    row["extra_metadata"] = {**current.get(gateway_id, {}), **pending.metadata}
                row["updated_at"] = row.get("last_seen") or utcnow()
                key = tuple(sorted(row))
                row["b_id"] = gateway_id
                groups.setdefault(key, []).append(row)
            for key, rows in groups.items():
                stmt = (
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values({name: bindparam(name) for name in key})
                )
                await session.execute(stmt, rows)
            await session.commit()
        return len(groups)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="presence-flusher")

    async def stop(self) -> None:
        """Stop the background task and write what is left (called on shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _refused(exc: BaseException) -> bool:
    """True when the database (or the driver's bind step) refused the data itself; anything
    else, such as a lost connection or a locked SQLite file, is worth retrying unchanged."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True
    return isinstance(exc, ValueError | TypeError)
