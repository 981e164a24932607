"""What each gateway should run: store a new desired configuration, and read it back.

A push stores an immutable, numbered version and queues a :class:`ConfigChanged` event on the
unit of work, so live agents get it once it is committed (never before).
"""

from __future__ import annotations

import logging
import uuid

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs.base import check_collector_yaml, config_hash
from flowgate.configs.models import GatewayRemoteConfig
from flowgate.core.errors import Conflict, DomainError
from flowgate.core.events import ConfigChanged
from flowgate.core.uow import UnitOfWork

log = logging.getLogger(__name__)


async def desired_config(
    session: AsyncSession, gateway_id: uuid.UUID
) -> GatewayRemoteConfig | None:
    """The configuration the gateway should run (its newest version), or None: base config."""
    return await session.scalar(
        select(GatewayRemoteConfig)
        .where(GatewayRemoteConfig.gateway_id == gateway_id)
        .order_by(GatewayRemoteConfig.version.desc())
        .limit(1)
    )


def check_config_body(config_yaml: str, content_type: str) -> None:
    """Refuse (400 with the reason) a body that is not a collector configuration."""
    try:
        if content_type == "application/json":
            if not isinstance(orjson.loads(config_yaml), dict):
                raise ValueError("an application/json config must be a JSON object")
        else:
            check_collector_yaml(config_yaml)
    except orjson.JSONDecodeError:
        raise DomainError("config_yaml is not valid JSON") from None
    except ValueError as exc:
        raise DomainError(str(exc)) from None


async def push_config(
    uow: UnitOfWork,
    *,
    gateway_id: uuid.UUID,
    org_id: uuid.UUID,
    config_yaml: str,
    created_by: uuid.UUID | None,
    content_type: str = "text/yaml",
) -> GatewayRemoteConfig:
    """Store a new numbered config as the gateway's desired one; live connections get it
    right after the unit of work commits (WebSocket at once, HTTP agents on their next poll,
    REST gateways from ``GET /api/v1/opamp/config/{instance_id}``)."""
    check_config_body(config_yaml, content_type)
    session = uow.session
    last = await session.scalar(
        select(func.max(GatewayRemoteConfig.version)).where(
            GatewayRemoteConfig.gateway_id == gateway_id
        )
    )
    record = GatewayRemoteConfig(
        gateway_id=gateway_id,
        org_id=org_id,
        version=(last or 0) + 1,
        config_yaml=config_yaml,
        content_type=content_type,
        config_hash=config_hash(config_yaml, content_type),
        created_by=created_by,
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("Another configuration was pushed at the same time; retry") from None
    uow.publish(ConfigChanged(org_id=org_id, gateway_ids=(gateway_id,)))
    log.info(
        "remote config stored",
        extra={"gateway_id": str(gateway_id), "config_version": record.version},
    )
    return record


async def desired_configs(
    session: AsyncSession, gateway_ids: list[uuid.UUID]
) -> dict[uuid.UUID, GatewayRemoteConfig]:
    """The newest configuration of each of ``gateway_ids`` that has one (one query per 1000)."""
    found: dict[uuid.UUID, GatewayRemoteConfig] = {}
    for start in range(0, len(gateway_ids), 1000):
        chunk = gateway_ids[start : start + 1000]
        newest = (
            select(
                GatewayRemoteConfig.gateway_id,
                func.max(GatewayRemoteConfig.version).label("version"),
            )
            .where(GatewayRemoteConfig.gateway_id.in_(chunk))
            .group_by(GatewayRemoteConfig.gateway_id)
            .subquery()
        )
        rows = await session.scalars(
            select(GatewayRemoteConfig).join(
                newest,
                (GatewayRemoteConfig.gateway_id == newest.c.gateway_id)
                & (GatewayRemoteConfig.version == newest.c.version),
            )
        )
        found.update({r.gateway_id: r for r in rows})
    return found
