"""Every query on the ``gateways`` table, in one place.

The REST services, the OpAMP sessions, presence and identity all read and write gateways
through these functions; nothing else selects or updates :class:`Gateway`. Management reads
are always scoped to an organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.errors import GatewayNotFound
from flowgate.gateways.health import (
    HEALTHY,
    OFFLINE,
    UNHEALTHY,
    WARNING,
    health_condition,
)
from flowgate.gateways.models import Gateway, GatewayStatus

#: Columns that presence (heartbeats, OpAMP state) may write in batches.
PRESENCE_COLUMNS = frozenset(
    {
        "last_seen",
        "status",
        "active_since",
        "current_config_version",
        "opamp_state",
        "transport",
        "opamp_instance_uid",
    }
)


async def get(session: AsyncSession, org_id: uuid.UUID, gateway_id: uuid.UUID) -> Gateway:
    """The organisation's gateway, or the seed's 404 "Gateway not found"."""
    gateway = await session.scalar(
        select(Gateway).where(Gateway.id == gateway_id, Gateway.org_id == org_id)
    )
    if gateway is None:
        raise GatewayNotFound()
    return gateway


async def by_id(session: AsyncSession, gateway_id: uuid.UUID) -> Gateway | None:
    """Unscoped lookup, for callers that authenticated the gateway itself (its OpAMP token)."""
    return await session.get(Gateway, gateway_id)


async def by_instance_id(
    session: AsyncSession, org_id: uuid.UUID, instance_id: str
) -> Gateway | None:
    return await session.scalar(
        select(Gateway).where(Gateway.org_id == org_id, Gateway.instance_id == instance_id)
    )


async def by_instance_uid(session: AsyncSession, uid_hex: str) -> Gateway | None:
    """The gateway holding an OpAMP instance_uid (unique across organisations)."""
    return await session.scalar(select(Gateway).where(Gateway.opamp_instance_uid == uid_hex))


@dataclass(frozen=True)
class ListFilter:
    status: GatewayStatus | None = None
    health: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class HealthRule:
    now: datetime
    healthy_seconds: float
    warning_seconds: float

    def condition(self, state: str) -> Any:
        return health_condition(state, self.now, self.healthy_seconds, self.warning_seconds)


async def page(
    session: AsyncSession,
    org_id: uuid.UUID,
    filters: ListFilter,
    rule: HealthRule,
    *,
    limit: int,
    after: tuple[str, uuid.UUID] | None,
) -> list[Gateway]:
    """Up to ``limit`` gateways ordered by (name, id), after the keyset ``after``."""
    query = select(Gateway).where(Gateway.org_id == org_id)
    if filters.status is not None:
        query = query.where(Gateway.status == filters.status)
    if filters.health is not None:
        query = query.where(rule.condition(filters.health))
    if filters.name:
        escaped = filters.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Gateway.name.ilike(f"%{escaped}%", escape="\\"))
    if after is not None:
        query = query.where(tuple_(Gateway.name, Gateway.id) > tuple_(*after))
    return list(await session.scalars(query.order_by(Gateway.name, Gateway.id).limit(limit)))


async def counts(
    session: AsyncSession, org_id: uuid.UUID, rule: HealthRule
) -> list[tuple[GatewayStatus, str, int]]:
    """(status, health, count) for every combination present in the organisation."""
    health_expr = case(
        *((rule.condition(state), state) for state in (OFFLINE, HEALTHY, WARNING)),
        else_=UNHEALTHY,
    ).label("health")
    rows = await session.execute(
        select(Gateway.status, health_expr, func.count())
        .where(Gateway.org_id == org_id)
        .group_by(Gateway.status, health_expr)
    )
    return [(GatewayStatus(s), str(h), int(n)) for s, h, n in rows.all()]


@dataclass
class PresenceRow:
    """Buffered values for one gateway, written only while its credential is ``guard``."""

    gateway_id: uuid.UUID
    guard: str
    values: dict[str, Any]
    metadata: dict[str, Any]


async def write_presence(session: AsyncSession, rows: Sequence[PresenceRow], now: datetime) -> int:
    """Write buffered presence in as few statements as possible; returns statements issued.

    Each row is written only where the gateway's current OpAMP token digest still equals the
    one its values were accepted with: a gateway deactivated (token cleared), deleted or
    re-registered (new token) after the heartbeat was taken is never written over, whichever
    replica buffered it. ``extra_metadata`` patches are merged into the stored object.
    """
    for row in rows:
        unknown = set(row.values) - PRESENCE_COLUMNS
        if unknown:
            raise ValueError(f"not a presence column: {sorted(unknown)}")
    table = cast(Table, Gateway.__table__)
    with_metadata = [r.gateway_id for r in rows if r.metadata]
    current: dict[uuid.UUID, dict[str, Any]] = {}
    for start in range(0, len(with_metadata), 1000):
        chunk = with_metadata[start : start + 1000]
        result = await session.execute(
            select(Gateway.id, Gateway.extra_metadata).where(Gateway.id.in_(chunk))
        )
        current.update({gid: meta or {} for gid, meta in result.all()})
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        params = dict(row.values)
        if row.metadata:
            params["extra_metadata"] = {**current.get(row.gateway_id, {}), **row.metadata}
        params["updated_at"] = params.get("last_seen") or now
        key = tuple(sorted(params))
        params["b_id"] = row.gateway_id
        params["b_guard"] = row.guard
        groups.setdefault(key, []).append(params)
    for key, params_list in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.opamp_token == bindparam("b_guard"))
            .values({name: bindparam(name) for name in key})
        )
        await session.execute(stmt, params_list)
    return len(groups)


@dataclass(frozen=True)
class StatusRow:
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    status: GatewayStatus
    last_seen: datetime | None
    token_digest: str | None


async def status_rows(session: AsyncSession, gateway_ids: Sequence[uuid.UUID]) -> list[StatusRow]:
    """Status, last contact and current credential of these gateways (unknown ids are left out),
    for announcing status changes."""
    found: list[StatusRow] = []
    ids = list(gateway_ids)
    for start in range(0, len(ids), 1000):
        result = await session.execute(
            select(
                Gateway.id, Gateway.org_id, Gateway.status, Gateway.last_seen, Gateway.opamp_token
            ).where(Gateway.id.in_(ids[start : start + 1000]))
        )
        found += [StatusRow(*row) for row in result.all()]
    return found
