"""Writing audit entries: in the unit of work of the change, or alone for a failed request.

One owner: :class:`Sink` (``app.state.audit``) is what :mod:`flowgate.core.routing` hands every
state-changing request's record to; :func:`stage` is how the CLI and OpAMP enrolment (which
have no route) add theirs to their own unit of work. Nothing else writes ``audit_log``.

Authentication failures (401) are not each worth a row — a scanner makes millions — so they
are counted (``flowgate_auth_failures_total``), and every failed request of nobody in
particular (no credential accepted: a 401, a throttled sign-in, a bad body without a
credential) is sampled: at most one row per client address per :data:`SAMPLE_SECONDS`, carrying
how many went unrecorded before it. A credential itself is never part of a record.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from starlette.requests import HTTPConnection

from flowgate import telemetry
from flowgate.audit.models import AuditEntry
from flowgate.core.audit import AuditRecord, bind, client_address, current
from flowgate.core.uow import UnitOfWork

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60.0
_MAX_TRACKED = 10_000


def entry(record: AuditRecord) -> AuditEntry:
    return AuditEntry(**_row(record))


def _row(record: AuditRecord) -> dict[str, Any]:
    """The ``audit_log`` row of ``record`` (its columns' limits applied)."""
    return {
        "at": record.at,
        "org_id": record.org_id,
        "actor_kind": record.actor_kind,
        "actor_id": record.actor_id,
        "actor_label": (record.actor_label or "")[:320] or None,
        "action": record.action[:100],
        "object_type": record.object_type[:64] if record.object_type else None,
        "object_id": record.object_id[:200] if record.object_id else None,
        "address": record.address[:64] if record.address else None,
        "result": record.result,
        "status_code": record.status_code,
        "detail": record.detail,
    }


def stage(uow: UnitOfWork, record: AuditRecord) -> None:
    """Add ``record`` to ``uow``: it commits with the change, or not at all."""
    uow.session.add(entry(record))
    uow.after_commit(lambda: telemetry.AUDIT_ENTRIES.inc(record.result))


def enrolment(
    uow: UnitOfWork,
    *,
    token_id: uuid.UUID,
    token_name: str,
    org_id: uuid.UUID,
    gateway_id: uuid.UUID,
    transport: str,
    created: bool,
) -> None:
    """A registration token was used: complete the REST request's record, or (OpAMP, no
    route) write one in the enrolment's unit of work."""
    record = current(uow.session)
    staged = record is None
    if record is None:
        record = AuditRecord(action="gateway.register", address=client_address.get())
    _describe_enrolment(uow, record, token_id, token_name, org_id, gateway_id, transport, created)
    if staged:
        bind(uow.session, record)
        stage(uow, record)


@dataclass(frozen=True)
class Enrolled:
    """One enrolment of a batch, with the address of the agent that made it (a batch runs
    outside each agent's request context, so :data:`client_address` is not its own)."""

    token_id: uuid.UUID
    token_name: str
    org_id: uuid.UUID
    gateway_id: uuid.UUID
    transport: str
    address: str | None


async def enrolments(uow: UnitOfWork, batch: Sequence[Enrolled]) -> None:
    """One row per new gateway of an OpAMP enrolment batch, in the batch's unit of work (the
    same row :func:`enrolment` writes for one), written by one Core INSERT: building an ORM
    object per row was a seventh of a batch's CPU."""
    records = []
    for item in batch:
        record = AuditRecord(action="gateway.register", address=item.address)
        _describe_enrolment(
            uow,
            record,
            item.token_id,
            item.token_name,
            item.org_id,
            item.gateway_id,
            item.transport,
            True,
        )
        records.append(record)
    if records:
        await uow.session.execute(insert(AuditEntry), [_row(record) for record in records])
    uow.after_commit(lambda: telemetry.AUDIT_ENTRIES.inc("success", amount=len(records)))


def _describe_enrolment(
    uow: UnitOfWork,
    record: AuditRecord,
    token_id: uuid.UUID,
    token_name: str,
    org_id: uuid.UUID,
    gateway_id: uuid.UUID,
    transport: str,
    created: bool,
) -> None:
    outcome = "created" if created else "reregistered"
    kind = "rest" if transport == "rest" else "opamp"
    uow.after_commit(lambda: telemetry.REGISTRATIONS.inc(kind, outcome))
    record.actor("registration_token", token_id, token_name, (org_id,))
    record.org_id = org_id
    record.target("gateway", gateway_id)
    record.detail = {"transport": transport, "created": created}


class AuthFailures:
    """Which failed authentications get a row: one per address per window."""

    def __init__(self, window: float = SAMPLE_SECONDS) -> None:
        self.window = window
        self._seen: dict[str, tuple[float, int]] = {}

    def sample(self, address: str | None) -> int | None:
        """None: count only; else write a row, which stands for the returned number of
        failures from this address left unrecorded before it."""
        key = address or "unknown"
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        if len(self._seen) >= _MAX_TRACKED:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return last[1] if last else 0


def _credential(connection: HTTPConnection, record: AuditRecord) -> str:
    if record.action in ("auth.login", "auth.sign_in"):
        return "password"
    if record.action == "gateway.register":
        return "registration_token"
    if connection.headers.get("authorization"):
        return "bearer"
    return "session"


class Sink:
    """The audit sink of one application (``app.state.audit``)."""

    def __init__(self, unit_of_work: Callable[[HTTPConnection], UnitOfWork]) -> None:
        self._unit_of_work = unit_of_work
        self.auth_failures = AuthFailures()

    def stage(self, uow: UnitOfWork, record: AuditRecord) -> None:
        stage(uow, record)

    async def failed(self, connection: HTTPConnection, record: AuditRecord) -> None:
        if record.status_code == 401:
            telemetry.AUTH_FAILURES.inc(_credential(connection, record))
        if record.actor_kind == "anonymous":
            # Nobody authenticated (a 401, a throttled sign-in, a bad body sent without a
            # credential): anyone can make these by the million, so sample them.
            unrecorded = self.auth_failures.sample(record.address)
            if unrecorded is None:
                return
            record.detail = {"sampled": True, "unrecorded_before": unrecorded}
        try:
            async with self._unit_of_work(connection) as uow:
                stage(uow, record)
        except Exception as exc:  # the database is away (503) or refuses: the request's
            log.warning(  # own answer stands; losing this row is logged
                "could not write the audit entry of a failed request",
                extra={"action": record.action, "error": type(exc).__name__},
            )
