"""Assignments: the one configuration each gateway should run, and reading it back.

Written only by the deployments service (:mod:`flowgate.configs.deployments`); read by the
REST config endpoint, the gateway views and the OpAMP agents (what to push).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Uuid, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs.base import base_config_yaml, config_hash
from flowgate.configs.models import (
    ACTIVE_DEPLOYMENT_STATES,
    Assignment,
    ConfigTemplate,
    ConfigVersion,
    Deployment,
)
from flowgate.core import bulk
from flowgate.core.db import UTCDateTime

CHUNK = 1000


@dataclass(frozen=True)
class Desired:
    """What a gateway should run. ``version`` None: the base configuration."""

    gateway_id: uuid.UUID
    config_yaml: str
    content_type: str
    config_hash: str
    version: int | None
    config_id: uuid.UUID | None
    config_name: str | None
    deployment_id: uuid.UUID | None
    assigned_at: datetime | None


def chunks(ids: Sequence[uuid.UUID]) -> list[Sequence[uuid.UUID]]:
    """``ids`` in slices of ``CHUNK`` (one IN list per statement)."""
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def current(
    session: AsyncSession, gateway_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Assignment]:
    found: dict[uuid.UUID, Assignment] = {}
    for chunk in chunks(gateway_ids):
        rows = await session.scalars(select(Assignment).where(Assignment.gateway_id.in_(chunk)))
        found.update({a.gateway_id: a for a in rows})
    return found


async def assign(
    session: AsyncSession,
    org_id: uuid.UUID,
    deployment_id: uuid.UUID,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID | None]],
    now: datetime,
) -> None:
    """Make each ``(gateway, version)`` the gateway's assignment (insert or replace)."""
    if not targets:
        return
    if bulk.is_postgres(session):
        await _assign_set_based(session, org_id, deployment_id, targets, now)
        return
    rows = [
        {
            "gateway_id": gid,
            "org_id": org_id,
            "config_version_id": vid,
            "deployment_id": deployment_id,
            "assigned_at": now,
        }
        for gid, vid in targets
    ]
    for start in range(0, len(rows), CHUNK):
        stmt = sqlite.insert(Assignment).values(rows[start : start + CHUNK])
        stmt = stmt.on_conflict_do_update(
            index_elements=[Assignment.gateway_id],
            set_={
                "config_version_id": stmt.excluded.config_version_id,
                "deployment_id": stmt.excluded.deployment_id,
                "assigned_at": stmt.excluded.assigned_at,
            },
        )
        await session.execute(stmt.execution_options(synchronize_session=False))


async def _assign_set_based(
    session: AsyncSession,
    org_id: uuid.UUID,
    deployment_id: uuid.UUID,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID | None]],
    now: datetime,
) -> None:
    """:func:`assign` on PostgreSQL: one ``INSERT ... SELECT FROM unnest ... ON CONFLICT``."""
    t = bulk.unnest(
        "t",
        gateway_id=("uuid", [gid for gid, _ in targets]),
        version_id=("uuid", [vid for _, vid in targets]),
    )
    source = select(
        t.c.gateway_id,
        literal(org_id, Uuid()),
        t.c.version_id,
        literal(deployment_id, Uuid()),
        literal(now, UTCDateTime()),
    )
    stmt = postgresql.insert(Assignment).from_select(
        ["gateway_id", "org_id", "config_version_id", "deployment_id", "assigned_at"], source
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[Assignment.gateway_id],
        set_={
            "config_version_id": stmt.excluded.config_version_id,
            "deployment_id": stmt.excluded.deployment_id,
            "assigned_at": stmt.excluded.assigned_at,
        },
    )
    await session.execute(stmt.execution_options(synchronize_session=False))


async def desired_for(
    session: AsyncSession, gateway_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Desired]:
    """The desired configuration of each gateway that has an assignment."""
    out: dict[uuid.UUID, Desired] = {}
    # Assignments first, then each distinct version once: a fan-out to 10k gateways of one
    # version reads its body once, not 10k times.
    versions: dict[uuid.UUID, tuple[ConfigVersion, ConfigTemplate | None]] = {}
    for chunk in chunks(gateway_ids):
        rows = (
            await session.execute(
                select(
                    Assignment.gateway_id,
                    Assignment.config_version_id,
                    Assignment.deployment_id,
                    Assignment.assigned_at,
                ).where(Assignment.gateway_id.in_(chunk))
            )
        ).all()
        unknown = {vid for _, vid, _, _ in rows if vid is not None and vid not in versions}
        if unknown:
            found = await session.execute(
                select(ConfigVersion, ConfigTemplate)
                .outerjoin(ConfigTemplate, ConfigTemplate.id == ConfigVersion.template_id)
                .where(ConfigVersion.id.in_(unknown))
            )
            versions.update({v.id: (v, tpl) for v, tpl in found.all()})
        for gateway_id, version_id, deployment_id, assigned_at in rows:
            loaded = versions.get(version_id) if version_id is not None else None
            if loaded is None:
                # No version (or it is gone): the base configuration.
                base = base_config_yaml()
                out[gateway_id] = Desired(
                    gateway_id,
                    base,
                    "text/yaml",
                    config_hash(base),
                    None,
                    None,
                    None,
                    deployment_id,
                    assigned_at,
                )
                continue
            version, template = loaded
            out[gateway_id] = Desired(
                gateway_id,
                version.config_yaml,
                version.content_type,
                version.config_hash,
                version.version,
                template.id if template else None,
                template.name if template else None,
                deployment_id,
                assigned_at,
            )
    return out


async def desired(session: AsyncSession, gateway_id: uuid.UUID) -> Desired | None:
    return (await desired_for(session, [gateway_id])).get(gateway_id)


async def template_in_use(session: AsyncSession, template_id: uuid.UUID) -> bool:
    """Whether a gateway is assigned a version of the template, or an unfinished deployment
    of it may still assign one (a template in use cannot be deleted)."""
    assigned = await session.scalar(
        select(Assignment.gateway_id)
        .join(ConfigVersion, ConfigVersion.id == Assignment.config_version_id)
        .where(ConfigVersion.template_id == template_id)
        .limit(1)
    )
    if assigned is not None:
        return True
    active = await session.scalar(
        select(Deployment.id)
        .where(
            Deployment.config_id == template_id,
            Deployment.state.in_((*ACTIVE_DEPLOYMENT_STATES, "paused")),
        )
        .limit(1)
    )
    return active is not None
