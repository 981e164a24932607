"""Every query on the ``gateways`` table, in one place.

The REST services, the OpAMP sessions, presence and identity all read and write gateways
through these functions; nothing else selects or updates :class:`Gateway`. Management reads
are always scoped to an organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Select,
    String,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from flowgate.core import bulk
from flowgate.core.db import UTCDateTime, dump_json
from flowgate.core.errors import GatewayNotFound
from flowgate.core.events import HealthChange
from flowgate.gateways import labels as label_rules
from flowgate.gateways.health import (
    HEALTHY,
    OFFLINE,
    OFFLINE_STATUSES,
    UNHEALTHY,
    WARNING,
    health_case,
    health_condition,
    out_of_step,
)
from flowgate.gateways.models import (
    Gateway,
    GatewayCount,
    GatewayCountDelta,
    GatewayHealthTransition,
    GatewayLabel,
    GatewayName,
    GatewayStatus,
)
from flowgate.gateways.selectors import Selector

#: Columns that presence (heartbeats, OpAMP state) may write in batches.
PRESENCE_COLUMNS = frozenset(
    {
        "last_seen",
        "status",
        "active_since",
        "current_config_version",
        "opamp_state",
        "components_hash",
        "transport",
        "opamp_instance_uid",
        # An OpAMP agent's flowgate.label.* attributes; the effective labels are recomputed
        # in the same transaction (see write_presence).
        "agent_labels",
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
    #: Only gateways whose labels match (None or an empty selector: every gateway).
    selector: Selector | None = None


@dataclass(frozen=True)
class HealthRule:
    now: datetime
    healthy_seconds: float
    warning_seconds: float

    def condition(self, state: str) -> Any:
        """The rule evaluated at ``now`` (not the stored column)."""
        return health_condition(state, self.now, self.healthy_seconds, self.warning_seconds)

    def case(self, status: Any, last_seen: Any) -> Any:
        return health_case(status, last_seen, self.now, self.healthy_seconds, self.warning_seconds)

    def assignments(self, status: Any, last_seen: Any, reason: Any) -> dict[str, Any]:
        """SET clauses keeping the stored health true for a row getting ``status`` and
        ``last_seen``: ``health_changed_at`` and ``health_reason`` move only when the health
        does (SET expressions read the row's old values on both databases)."""
        new = self.case(status, last_seen)
        changed = Gateway.health != new
        return {
            "health": new,
            "health_changed_at": case((changed, self.now), else_=Gateway.health_changed_at),
            "health_reason": case((changed, reason), else_=Gateway.health_reason),
        }


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
        query = query.where(Gateway.health == filters.health)
    if filters.name:
        escaped = filters.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # Through gateway_names and its trigram index (see GatewayName).
        names = select(GatewayName.gateway_id).where(
            GatewayName.org_id == org_id,
            GatewayName.name.ilike(f"%{escaped}%", escape="\\"),
        )
        query = query.where(Gateway.id.in_(names))
    if filters.selector is not None and not filters.selector.empty:
        query = query.where(filters.selector.to_sql(Gateway.id, org_id))
    if after is not None:
        query = query.where(tuple_(Gateway.name, Gateway.id) > tuple_(*after))
    # The list shows the effective labels only: the two layers they come from (JSON decoded
    # per row) are not loaded.
    query = query.options(defer(Gateway.agent_labels), defer(Gateway.manual_labels))
    return list(await session.scalars(query.order_by(Gateway.name, Gateway.id).limit(limit)))


def _count_rows(org_id: uuid.UUID) -> Subquery:
    """The organisation's (status, health, n) rows: compacted counts and the deltas since,
    which sum to exactly its gateways (the triggers write both in the writer's transaction)."""
    base = select(GatewayCount.status, GatewayCount.health, GatewayCount.n).where(
        GatewayCount.org_id == org_id
    )
    deltas = select(GatewayCountDelta.status, GatewayCountDelta.health, GatewayCountDelta.n).where(
        GatewayCountDelta.org_id == org_id
    )
    return base.union_all(deltas).subquery()


async def counts(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[GatewayStatus, str, int]]:
    """(status, stored health, count) for every combination present in the organisation: the
    compacted counts plus the deltas the triggers wrote since (a few rows, never a scan of
    ``gateways``)."""
    both = _count_rows(org_id)
    rows = await session.execute(
        select(both.c.status, both.c.health, func.sum(both.c.n)).group_by(
            both.c.status, both.c.health
        )
    )
    return [(GatewayStatus(s), str(h), int(n)) for s, h, n in rows.all() if int(n or 0) != 0]


async def counts_by_org(session: AsyncSession) -> list[tuple[uuid.UUID, GatewayStatus, str, int]]:
    """(org, status, stored health, count) over every organisation: :func:`counts` for all of
    them at once, from the maintained counts (never a scan of ``gateways``)."""
    base = select(GatewayCount.org_id, GatewayCount.status, GatewayCount.health, GatewayCount.n)
    deltas = select(
        GatewayCountDelta.org_id,
        GatewayCountDelta.status,
        GatewayCountDelta.health,
        GatewayCountDelta.n,
    )
    both = base.union_all(deltas).subquery()
    rows = await session.execute(
        select(both.c.org_id, both.c.status, both.c.health, func.sum(both.c.n)).group_by(
            both.c.org_id, both.c.status, both.c.health
        )
    )
    return [(o, GatewayStatus(s), str(h), int(n)) for o, s, h, n in rows.all() if int(n or 0) != 0]


def count_statement(org_id: uuid.UUID, selector: Selector) -> Select[tuple[int]]:
    """SELECT the number of the organisation's gateways the selector matches (read from the
    label index; see :meth:`Selector.count_sql`). The organisation's total, which an empty or
    purely negative selector starts from, is the sum of its maintained counts: a few rows, where
    ``count(*)`` of ``gateways`` read 100k rows (~35 ms on PostgreSQL)."""
    both = _count_rows(org_id)
    total = select(sql_cast(func.coalesce(func.sum(both.c.n), 0), BigInteger)).scalar_subquery()
    return select(selector.count_sql(org_id, total))


async def matching_ids(
    session: AsyncSession, org_id: uuid.UUID, selector: Selector
) -> set[uuid.UUID]:
    """The ids of the organisation's gateways the selector matches (from the label index)."""
    query = select(Gateway.id).where(Gateway.org_id == org_id, selector.to_sql(Gateway.id, org_id))
    return set((await session.scalars(query)).all())


async def count_matching(session: AsyncSession, org_id: uuid.UUID, selector: Selector) -> int:
    """How many of the organisation's gateways the selector matches."""
    return int(await session.scalar(count_statement(org_id, selector)) or 0)


# -- labels ----------------------------------------------------------------------------------
# ``gateways.labels`` (effective) is derived from ``agent_labels`` and ``manual_labels`` and
# mirrored in ``gateway_labels``; only the functions below write any of them, always all in the
# caller's transaction, so a selector never sees a half-applied change.


async def set_agent_labels(
    session: AsyncSession, gateway: Gateway, agent_labels: dict[str, str]
) -> None:
    """Replace what the gateway itself reports (a REST registration's labels)."""
    await _lock_layers(session, gateway)
    gateway.agent_labels = dict(sorted(agent_labels.items()))
    await _apply(session, gateway)


async def set_manual_labels(session: AsyncSession, gateway: Gateway, body: dict[str, str]) -> None:
    """``PATCH {"labels": body}``: afterwards the effective labels are exactly ``body``."""
    await _lock_layers(session, gateway)
    gateway.manual_labels = label_rules.manual_after_patch(
        body, gateway.agent_labels or {}, gateway.manual_labels or {}
    )
    await _apply(session, gateway)


async def _lock_layers(session: AsyncSession, gateway: Gateway) -> None:
    """Re-read the label layers under a row lock (PostgreSQL), so a concurrent presence flush
    writing agent labels cannot interleave with this change; SQLite serialises writers."""
    if inspect(gateway).persistent:
        await session.refresh(
            gateway, ["labels", "agent_labels", "manual_labels"], with_for_update=True
        )


async def _apply(session: AsyncSession, gateway: Gateway) -> None:
    new = label_rules.effective(gateway.agent_labels or {}, gateway.manual_labels or {})
    changed = new != (gateway.labels or {})
    gateway.labels = new
    await session.flush()  # a new gateway's row must exist before its label rows
    if changed:
        await _mirror(session, {gateway.id: (gateway.org_id, new)})


async def _mirror(
    session: AsyncSession, effective: dict[uuid.UUID, tuple[uuid.UUID, dict[str, str]]]
) -> None:
    """Make ``gateway_labels`` hold exactly these gateways' effective labels."""
    table = cast(Table, GatewayLabel.__table__)
    ids = list(effective)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        await session.execute(delete(table).where(table.c.gateway_id.in_(chunk)))
    rows = [
        {"gateway_id": gid, "org_id": org_id, "key": key, "value": value}
        for gid, (org_id, labels) in effective.items()
        for key, value in labels.items()
    ]
    if rows:
        await session.execute(insert(table), rows)


async def _refresh_effective(session: AsyncSession, gateway_ids: list[uuid.UUID]) -> None:
    """Recompute the effective labels of gateways whose agent labels presence just wrote."""
    changed: dict[uuid.UUID, tuple[uuid.UUID, dict[str, str]]] = {}
    for start in range(0, len(gateway_ids), 1000):
        chunk = gateway_ids[start : start + 1000]
        result = await session.execute(
            select(
                Gateway.id,
                Gateway.org_id,
                Gateway.labels,
                Gateway.agent_labels,
                Gateway.manual_labels,
            ).where(Gateway.id.in_(chunk))
        )
        for gid, org_id, current, agent, manual in result.all():
            new = label_rules.effective(agent or {}, manual or {})
            if new != (current or {}):
                changed[gid] = (org_id, new)
    table = cast(Table, Gateway.__table__)
    if changed:
        stmt = update(table).where(table.c.id == bindparam("b_id"))
        await session.execute(
            stmt.values(labels=bindparam("b_labels")),
            [{"b_id": gid, "b_labels": new} for gid, (_, new) in changed.items()],
        )
        await _mirror(session, changed)


@dataclass
class PresenceRow:
    """Buffered values for one gateway, written only while its credential is ``guard``."""

    gateway_id: uuid.UUID
    guard: str
    values: dict[str, Any]
    metadata: dict[str, Any]


async def write_presence(
    session: AsyncSession,
    rows: Sequence[PresenceRow],
    now: datetime,
    rule: HealthRule | None = None,
) -> int:
    """Write buffered presence in as few statements as possible; returns statements issued.

    Each row is written only where the gateway's current OpAMP token digest still equals the
    one its values were accepted with: a gateway deactivated (token cleared), deleted or
    re-registered (new token) after the heartbeat was taken is never written over, whichever
    replica buffered it. ``extra_metadata`` patches are merged into the stored object.

    The same UPDATE sets the stored health from the new (or kept) status and last_seen at
    ``rule.now`` (default thresholds without a rule); a change of it is recorded in the
    health history by the trigger, with reason ``heartbeat`` (``connected`` / ``disconnected``
    when the status changes to active / offline).
    """
    rule = rule or HealthRule(now, 60, 300)
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
    for params_list in groups.values():
        for params in params_list:
            status = params.get("status")
            params["b_reason"] = (
                "heartbeat"
                if status is None
                else "disconnected"
                if status in (GatewayStatus.inactive, GatewayStatus.error)
                else "connected"
            )
    set_based = bulk.is_postgres(session)
    for key, params_list in groups.items():
        if set_based:
            await _update_set_based(session, table, key, params_list, rule)
            continue
        binds = {name: bindparam(name, type_=table.c[name].type) for name in key}
        # Typed explicitly: PostgreSQL must deduce one type for a parameter used twice.
        status = sql_cast(binds["status"], String(16)) if "status" in binds else table.c.status
        last_seen = binds.get("last_seen", table.c.last_seen)
        reason = bindparam("b_reason", type_=table.c.health_reason.type)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.opamp_token == bindparam("b_guard"))
            .values({**binds, **rule.assignments(status, last_seen, reason)})
        )
        await session.execute(stmt, params_list)
    relabelled = [r.gateway_id for r in rows if "agent_labels" in r.values]
    if relabelled:
        await _refresh_effective(session, relabelled)
    return len(groups)


_UTC_DATETIME = UTCDateTime()


def _array_kind(column: Any) -> str:
    """How a presence column travels in :func:`_update_set_based` (a ``bulk.unnest`` kind, or
    ``json``: text arrays cast to the column's type), read from the column's own type."""
    kind = column.type
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, Integer):
        return "int"
    if isinstance(kind, String):  # Enum columns are Strings too
        return "text"
    raise TypeError(f"no array form for presence column {column.name} ({kind!r})")


_ARRAY_KINDS: dict[str, str] = {
    name: _array_kind(Gateway.__table__.c[name])
    for name in (*PRESENCE_COLUMNS, "extra_metadata", "updated_at")
}


async def _update_set_based(
    session: AsyncSession,
    table: Table,
    key: tuple[str, ...],
    params_list: list[dict[str, Any]],
    rule: HealthRule,
) -> None:
    """PostgreSQL: one UPDATE ... FROM unnest(...) for rows setting the same columns, instead
    of an execution per row (a 10k-agent fleet at a 30 s heartbeat flushes ~330 rows a second;
    per-row parameter handling cost ~50 us of the server's CPU each). The same guard, values
    and health assignments as the row-based statement of :func:`write_presence`."""
    dialect = session.get_bind().dialect
    arrays: dict[str, tuple[str, list[Any]]] = {
        "b_id": ("uuid", [p["b_id"] for p in params_list]),
        "b_guard": ("text", [p["b_guard"] for p in params_list]),
        "b_reason": ("text", [p["b_reason"] for p in params_list]),
    }
    for name in key:
        kind = _ARRAY_KINDS[name]
        values = [p[name] for p in params_list]
        if kind == "json":
            arrays[name] = ("text", [dump_json(v) for v in values])
        elif kind == "timestamptz":
            # The column type's own rule (a naive datetime is refused: row by row, see
            # Presence.flush), as the row-based statement applies it.
            bind = _UTC_DATETIME.process_bind_param
            arrays[name] = (kind, [bind(v, dialect) for v in values])
        else:
            arrays[name] = (kind, values)
    v = bulk.unnest("v", **arrays)
    columns = {
        name: sql_cast(v.c[name], table.c[name].type) if _ARRAY_KINDS[name] == "json" else v.c[name]
        for name in key
    }
    status = columns.get("status", table.c.status)
    last_seen = columns.get("last_seen", table.c.last_seen)
    stmt = (
        update(table)
        .where(table.c.id == v.c.b_id, table.c.opamp_token == v.c.b_guard)
        .values({**columns, **rule.assignments(status, last_seen, v.c.b_reason)})
    )
    await session.execute(stmt.execution_options(synchronize_session=False))


@dataclass(frozen=True)
class TargetRow:
    """A gateway a deployment may target: what planning and the component check need."""

    gateway_id: uuid.UUID
    name: str
    available_components: dict[str, Any] | None


async def deployment_targets(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    ids: Sequence[uuid.UUID] | None = None,
    selector: Selector | None = None,
) -> list[TargetRow]:
    """The organisation's gateways among ``ids``, or matching ``selector``, or all of them, in
    the stable rollout order (name, then id), with the components each reported.

    A fleet runs a few builds of the Collector, and every agent of one build reports the same
    component map under the same hash (tens of KiB for a contrib build). So only the hashes
    are read per gateway (``components_hash``, a column of its own: reading it out of the
    state made PostgreSQL unpack every state), and each distinct map once, from one gateway
    that reported it in full. With 250 components per gateway, reading every map made a 10k
    deployment take 6-8 s instead of well under one."""
    reported = Gateway.opamp_state["available_components"]
    query = select(Gateway.id, Gateway.name, Gateway.components_hash).where(
        Gateway.org_id == org_id
    )
    if selector is not None:
        query = query.where(selector.to_sql(Gateway.id, org_id))
    rows: list[Any] = []
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 1000):
            chunk = query.where(Gateway.id.in_(wanted[start : start + 1000]))
            rows.extend((await session.execute(chunk)).all())
        rows.sort(key=lambda r: (r[1], r[0]))
    else:
        rows = list((await session.execute(query.order_by(Gateway.name, Gateway.id))).all())
    maps: dict[str, dict[str, Any] | None] = {}
    for hash_hex in {h for _, _, h in rows if h}:
        # Any gateway of the organisation that reported this map in full (one that has only
        # sent the hash so far has ``components: null``).
        found = await session.scalar(
            select(reported)
            .where(
                Gateway.org_id == org_id,
                Gateway.components_hash == hash_hex,
                reported["components"].as_string().is_not(None),
            )
            .limit(1)
        )
        maps[hash_hex] = found if isinstance(found, dict) else None
    return [TargetRow(gid, name, maps.get(h) if h else None) for gid, name, h in rows]


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


# -- alerting --------------------------------------------------------------------------------
# What flowgate.alerts.evaluator reads (one query per rule), through the health rule above.


@dataclass(frozen=True)
class AlertGatewayRow:
    gateway_id: uuid.UUID
    name: str
    labels: dict[str, str]
    health: str
    last_seen: datetime | None


def _alert_scope(org_id: uuid.UUID, selector: Selector | None) -> list[Any]:
    scope: list[Any] = [Gateway.org_id == org_id]
    if selector is not None and not selector.empty:
        scope.append(selector.to_sql(Gateway.id, org_id))
    return scope


async def alert_unhealthy_gateways(
    session: AsyncSession,
    org_id: uuid.UUID,
    selector: Selector | None,
    rule: HealthRule,
    for_seconds: float,
    limit: int,
) -> list[AlertGatewayRow]:
    """Up to ``limit`` of the gateways ``selector`` matches (by name) that have been unhealthy
    or offline for at least ``for_seconds``.

    Unhealthy for ``for_seconds`` = unhealthy under the health rule evaluated ``for_seconds``
    ago (last seen more than warning threshold + ``for_seconds`` ago; never seen: registered at
    least ``for_seconds`` ago); offline for ``for_seconds`` = offline now and not heard from
    (or registered) within ``for_seconds``."""
    since = rule.now - timedelta(seconds=for_seconds)
    then = HealthRule(since, rule.healthy_seconds, rule.warning_seconds)
    contact = func.coalesce(Gateway.last_seen, Gateway.created_at)
    bad_long = or_(
        and_(then.condition(UNHEALTHY), Gateway.created_at <= since),
        and_(rule.condition(OFFLINE), contact <= since),
    )
    health = case((rule.condition(OFFLINE), OFFLINE), else_=UNHEALTHY)
    rows = await session.execute(
        select(Gateway.id, Gateway.name, Gateway.labels, health, Gateway.last_seen)
        .where(*_alert_scope(org_id, selector), bad_long)
        .order_by(Gateway.name, Gateway.id)
        .limit(limit)
    )
    return [
        AlertGatewayRow(gid, name, dict(labels or {}), str(state), seen)
        for gid, name, labels, state, seen in rows.all()
    ]


async def alert_unhealthy_share(
    session: AsyncSession, org_id: uuid.UUID, selector: Selector | None, rule: HealthRule
) -> tuple[int, int]:
    """(how many gateways ``selector`` matches, how many of them are unhealthy or offline)."""
    bad = or_(rule.condition(UNHEALTHY), rule.condition(OFFLINE))
    total, unhealthy = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(case((bad, 1), else_=0)), 0)).where(
                *_alert_scope(org_id, selector)
            )
        )
    ).one()
    return int(total), int(unhealthy)


# -- stored health and its history -------------------------------------------------------------


async def set_offline(
    session: AsyncSession, gateway_ids: Sequence[uuid.UUID], now: datetime, reason: str
) -> None:
    """Store ``offline`` for gateways whose status was just set inactive or error (offline
    whatever the thresholds)."""
    changed = Gateway.health != OFFLINE
    ids = list(gateway_ids)
    for start in range(0, len(ids), 1000):
        await session.execute(
            update(Gateway)
            .where(Gateway.id.in_(ids[start : start + 1000]), changed)
            .values(health=OFFLINE, health_changed_at=now, health_reason=reason)
            .execution_options(synchronize_session=False)
        )


async def refresh_health(
    session: AsyncSession, gateway_ids: Sequence[uuid.UUID], rule: HealthRule, reason: str
) -> None:
    """Recompute the stored health of these gateways from their current status and last_seen
    (after a write through the ORM changed them, e.g. a re-registration)."""
    ids = list(gateway_ids)
    new = rule.case(Gateway.status, Gateway.last_seen)
    for start in range(0, len(ids), 1000):
        await session.execute(
            update(Gateway)
            .where(Gateway.id.in_(ids[start : start + 1000]), Gateway.health != new)
            .values(health=new, health_changed_at=rule.now, health_reason=reason)
            .execution_options(synchronize_session=False)
        )


async def health_changes_at(
    session: AsyncSession, at: datetime, gateway_ids: Sequence[uuid.UUID] | None = None
) -> list[HealthChange]:
    """The transitions written at ``at`` (this transaction's, read back to announce them; one
    probe of the index on ``at``), optionally only these gateways'."""
    h = GatewayHealthTransition
    query = select(h.gateway_id, h.org_id, h.from_health, h.to_health, h.reason, h.at).where(
        h.at == at
    )
    rows = [HealthChange(*r) for r in (await session.execute(query.order_by(h.id))).all()]
    if gateway_ids is None:
        return rows
    wanted = set(gateway_ids)
    return [r for r in rows if r.gateway_id in wanted]


async def sweep_health(session: AsyncSession, rule: HealthRule, limit: int) -> int:
    """Rewrite the stored health of up to ``limit`` gateways out of step with the rule at
    ``rule.now`` (one UPDATE; the trigger records each transition); returns how many. Gateways
    that only aged get reason ``silent``; anything else out of step (a row written around the
    writers, changed thresholds) ``reconciled``. PostgreSQL skips rows another transaction holds
    (a presence flush is writing them, and sets their health itself)."""
    new = rule.case(Gateway.status, Gateway.last_seen)
    aged = and_(
        Gateway.status.not_in(sorted(OFFLINE_STATUSES)),
        Gateway.health.in_((HEALTHY, WARNING)),
        new.in_((WARNING, UNHEALTHY)),
    )
    candidates = (
        select(Gateway.id)
        .where(out_of_step(rule.now, rule.healthy_seconds, rule.warning_seconds))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
        # The planner multiplies the selectivities of health, status and last_seen as if they
        # were independent (they are not: healthy rows have recent last_seen), expects
        # thousands of matches where there are a few, and with the LIMIT picks a scan of the
        # whole table; the index ranges are what fits. For the rest of this transaction only.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
    result = await session.execute(
        update(Gateway)
        .where(Gateway.id.in_(candidates.scalar_subquery()))
        .values(
            health=new,
            health_changed_at=rule.now,
            health_reason=case((aged, "silent"), else_="reconciled"),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_health_history(session: AsyncSession, before: datetime) -> int:
    """Delete transitions older than ``before``; returns how many."""
    result = await session.execute(
        delete(GatewayHealthTransition)
        .where(GatewayHealthTransition.at < before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def compact_counts(session: AsyncSession) -> None:
    """Fold the count deltas the triggers appended into ``gateway_counts``. PostgreSQL: one
    statement that deletes exactly the deltas it adds up (a concurrent writer's uncommitted
    ones stay for the next time). SQLite: writers are serialised, so read the newest id first."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text(
                "WITH moved AS (DELETE FROM gateway_count_deltas "
                "RETURNING org_id, status, health, n) "
                "INSERT INTO gateway_counts (org_id, status, health, n) "
                "SELECT org_id, status, health, SUM(n) FROM moved "
                "GROUP BY org_id, status, health "
                "ON CONFLICT (org_id, status, health) "
                "DO UPDATE SET n = gateway_counts.n + EXCLUDED.n"
            )
        )
    else:
        top = await session.scalar(select(func.max(GatewayCountDelta.id)))
        if top is None:
            return
        await session.execute(
            text(
                "INSERT INTO gateway_counts (org_id, status, health, n) "
                "SELECT org_id, status, health, SUM(n) FROM gateway_count_deltas "
                "WHERE id <= :top GROUP BY org_id, status, health "
                "ON CONFLICT (org_id, status, health) "
                "DO UPDATE SET n = gateway_counts.n + excluded.n"
            ),
            {"top": top},
        )
        await session.execute(
            delete(GatewayCountDelta)
            .where(GatewayCountDelta.id <= top)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        delete(GatewayCount).where(GatewayCount.n == 0).execution_options(synchronize_session=False)
    )


async def health_history(
    session: AsyncSession,
    org_id: uuid.UUID,
    gateway_id: uuid.UUID,
    *,
    since: datetime | None,
    limit: int,
    after: tuple[datetime, int] | None,
) -> list[tuple[int, HealthChange]]:
    """The gateway's transitions in (at, id) order from ``since``, after the keyset ``after``,
    as (id, change)."""
    h = GatewayHealthTransition
    query = select(h.id, h.gateway_id, h.org_id, h.from_health, h.to_health, h.reason, h.at).where(
        h.gateway_id == gateway_id, h.org_id == org_id, h.at.is_not(None)
    )
    if since is not None:
        query = query.where(h.at >= since)
    if after is not None:
        query = query.where(tuple_(h.at, h.id) > tuple_(*after))
    rows = await session.execute(query.order_by(h.at, h.id).limit(limit))
    return [(int(r[0]), HealthChange(*r[1:])) for r in rows.all()]


async def health_transition_buckets(
    session: AsyncSession, org_id: uuid.UUID, since: datetime, step_seconds: int
) -> list[tuple[int, str | None, str, int]]:
    """(bucket, from, to, count) of the organisation's transitions after ``since``, bucket =
    floor((at - since) / step)."""
    h = GatewayHealthTransition
    if session.get_bind().dialect.name == "postgresql":
        seconds: Any = func.extract("epoch", h.at - since)
    else:
        # SQLite keeps datetimes as text; julianday() reads it (to ~50 microseconds).
        since_text = since.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        seconds = (func.julianday(h.at) - func.julianday(since_text)) * 86400.0
    # floor() on PostgreSQL; SQLite has it only when built with its math functions, so there
    # the quotient (positive: at > since) is truncated with CAST, which is floor for it.
    quotient = seconds / step_seconds
    postgres = session.get_bind().dialect.name == "postgresql"
    bucket = (func.floor(quotient) if postgres else sql_cast(quotient, Integer)).label("bucket")
    rows = await session.execute(
        select(bucket, h.from_health, h.to_health, func.count())
        .where(h.org_id == org_id, h.at > since)
        .group_by(bucket, h.from_health, h.to_health)
    )
    return [(int(b), f, str(t), int(n)) for b, f, t, n in rows.all()]
