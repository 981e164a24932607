"""The per-gateway shortcut: ``PUT /api/v1/gateways/{id}/remote-config``.

It keeps the original one-gateway API (and the gateway scripts) working on top of templates and
deployments: the body becomes the next version of the gateway's own template
(``gateway:<instance_id>``, created on first use) and is deployed to that gateway alone, all at
once. So a push is an ordinary, recorded deployment that shows up in the deployment history.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from flowgate.configs import templates, versions
from flowgate.configs.models import ConfigTemplate, ConfigVersion, Deployment
from flowgate.core.uow import UnitOfWork
from flowgate.deployments import service as deployments
from flowgate.gateways.models import Gateway

DESCRIPTION = "Pushed to this gateway with PUT /api/v1/gateways/{id}/remote-config"


def template_name(instance_id: str) -> str:
    """``gateway:<instance_id>``, or a digest of a very long instance id (names fit 200)."""
    name = f"gateway:{instance_id}"
    if len(name) <= 200:
        return name
    return f"gateway:{hashlib.sha256(instance_id.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class DirectPush:
    version: ConfigVersion
    deployment: Deployment


async def push(
    uow: UnitOfWork,
    gateway: Gateway,
    config_yaml: str,
    content_type: str,
    created_by: uuid.UUID | None,
) -> DirectPush:
    session = uow.session
    name = template_name(gateway.instance_id)
    template = await session.scalar(
        select(ConfigTemplate).where(
            ConfigTemplate.org_id == gateway.org_id, ConfigTemplate.name == name
        )
    )
    if template is None:
        template = await templates.create(session, gateway.org_id, name, DESCRIPTION, created_by)
    version = await versions.add_version(
        session, gateway.org_id, template.id, config_yaml, content_type, None, created_by
    )
    plan = deployments.Plan(
        org_id=gateway.org_id,
        version=version,
        template=template,
        targets=[(gateway.id, version.id)],
        batches=[[gateway.id]],
        target_spec={"gateway_ids": [str(gateway.id)]},
        strategy={"type": "all-at-once"},
        auto_rollback=False,
        message="PUT /api/v1/gateways/{id}/remote-config",
    )
    deployment = await deployments.create(uow, plan, created_by)
    return DirectPush(version=version, deployment=deployment)
