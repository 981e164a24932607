"""``GET /api/v1/audit``: an organisation's audit log, for its admins, newest first."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, select

from flowgate.audit.models import AuditEntry
from flowgate.auth.principal import AdminAccess
from flowgate.core.deps import SessionDep
from flowgate.core.errors import DomainError
from flowgate.core.routing import api_router

router = api_router(prefix="/api/v1/audit", tags=["audit"])


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    org_id: uuid.UUID | None
    actor_kind: str
    actor_id: uuid.UUID | None
    actor_label: str | None
    action: str
    object_type: str | None
    object_id: str | None
    address: str | None
    result: str
    status_code: int
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    #: Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None


Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise DomainError("Invalid cursor")
    return int(value)


@router.get("", operation_id="list_audit_entries")
async def list_audit_entries(
    access: AdminAccess,
    session: SessionDep,
    actor: Annotated[
        Text, Query(description="an actor id (user, API key, registration token) or email")
    ] = None,
    action: Annotated[
        Text, Query(description="an action (`gateway.deactivate`), or a prefix ending in `.`")
    ] = None,
    object: Annotated[
        Text, Query(description="an object id, or `type:id` (`gateway:<uuid>`)")
    ] = None,
    since: Annotated[datetime | None, Query(description="only entries at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> AuditPage:
    """The organisation's audit entries matching every filter, newest first, keyset-paged.
    Admins only (viewers and operators get 403); entries of other organisations never show."""
    query = select(AuditEntry).where(AuditEntry.org_id == access.org_id)
    if actor:
        try:
            query = query.where(AuditEntry.actor_id == uuid.UUID(actor))
        except ValueError:
            query = query.where(AuditEntry.actor_label == actor)
    if action:
        if action.endswith("."):
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if object:
        kind, sep, object_id = object.rpartition(":")
        if sep:
            query = query.where(AuditEntry.object_type == kind, AuditEntry.object_id == object_id)
        else:
            query = query.where(
                or_(AuditEntry.object_id == object_id, AuditEntry.object_type == object_id)
            )
    if since is not None:
        if since.tzinfo is None:
            raise DomainError("since needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        query = query.where(AuditEntry.at >= since)
    after = _cursor(cursor)
    if after is not None:
        query = query.where(AuditEntry.id < after)
    rows = list(await session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        items=[AuditEntryOut.model_validate(r) for r in rows],
        next_cursor=str(rows[-1].id) if more and rows else None,
    )
