"""What the audit log records about one action, and how the layers above add to it.

:mod:`flowgate.core.routing` opens one :class:`AuditRecord` for every request to a route that
changes state (its action and object derived from the route), the credential checks fill in
who is calling (:func:`note_actor`, :func:`note_org`), and the route writes it in the request's
own transaction when the endpoint succeeds — or in a small transaction of its own when the
request fails. The rows themselves are :mod:`flowgate.audit`'s business, reached through the
:class:`AuditSink` the application puts in ``app.state.audit`` (core imports nothing above it).

Services that know more than the route (an enrolment knows its registration token and the
gateway it made) enrich the record of their session with :func:`current`.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from flowgate.core.db import utcnow
from flowgate.core.uow import UnitOfWork

ActorKind = Literal["user", "api_key", "registration_token", "cli", "anonymous"]
Result = Literal["success", "denied", "failed"]

#: The peer of the OpAMP connection or request being served (set by the OpAMP transport), for
#: the records of work that has no route (an enrolment).
client_address: ContextVar[str | None] = ContextVar("flowgate_client_address", default=None)

_SESSION_KEY = "flowgate.audit"
_STATE_KEY = "audit"


@dataclass
class AuditRecord:
    action: str
    object_type: str | None = None
    object_id: str | None = None
    org_id: uuid.UUID | None = None
    actor_kind: ActorKind = "anonymous"
    actor_id: uuid.UUID | None = None
    #: A readable name of the actor (an email, a key or token name); never a secret.
    actor_label: str | None = None
    #: Organisations the actor holds a role in (to attribute a request that failed early).
    actor_orgs: tuple[uuid.UUID, ...] = ()
    address: str | None = None
    at: datetime = field(default_factory=utcnow)
    result: Result = "success"
    status_code: int = 200
    detail: dict[str, Any] | None = None

    def actor(
        self,
        kind: ActorKind,
        actor_id: uuid.UUID | None,
        label: str | None = None,
        orgs: tuple[uuid.UUID, ...] = (),
    ) -> None:
        self.actor_kind, self.actor_id, self.actor_label, self.actor_orgs = (
            kind,
            actor_id,
            label,
            orgs,
        )

    def target(self, object_type: str, object_id: object) -> None:
        self.object_type, self.object_id = object_type, str(object_id)


class AuditSink(Protocol):
    """Where records go (``flowgate.audit.log.Sink``)."""

    def stage(self, uow: UnitOfWork, record: AuditRecord) -> None:
        """Add ``record`` to ``uow``'s transaction: it commits with the change or not at all."""

    async def failed(self, connection: HTTPConnection, record: AuditRecord) -> None:
        """Write a failed or denied request's record in a transaction of its own (the
        request's own transaction rolled back); authentication failures are counted and only
        sampled."""


def open_record(connection: HTTPConnection, record: AuditRecord) -> None:
    connection.state.audit = record


def of_request(connection: HTTPConnection) -> AuditRecord | None:
    record: AuditRecord | None = getattr(connection.state, _STATE_KEY, None)
    return record


def bind(session: AsyncSession, record: AuditRecord) -> None:
    """Make ``record`` the one services enriching ``session``'s work find (:func:`current`)."""
    session.info[_SESSION_KEY] = record


def current(session: AsyncSession) -> AuditRecord | None:
    """The record of the action ``session`` carries out, if it is being audited."""
    record: AuditRecord | None = session.info.get(_SESSION_KEY)
    return record


def note_actor(
    connection: HTTPConnection,
    kind: ActorKind,
    actor_id: uuid.UUID | None,
    label: str | None = None,
    orgs: tuple[uuid.UUID, ...] = (),
) -> None:
    record = of_request(connection)
    if record is not None:
        record.actor(kind, actor_id, label, orgs)


def note_org(connection: HTTPConnection, org_id: uuid.UUID) -> None:
    """The organisation the request acts on (its access check passed there)."""
    record = of_request(connection)
    if record is not None:
        record.org_id = org_id


__all__ = [
    "ActorKind",
    "AuditRecord",
    "AuditSink",
    "Result",
    "bind",
    "client_address",
    "current",
    "note_actor",
    "note_org",
    "of_request",
    "open_record",
]
