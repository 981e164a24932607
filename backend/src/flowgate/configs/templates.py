"""Configuration templates of an organisation: create, list, read, rename, delete.

Every function is scoped to one organisation: a template of another one is not found. They
flush through the caller's session and never commit (the unit of work does).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs import assignments
from flowgate.configs.models import ConfigTemplate
from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, NotFound

log = logging.getLogger(__name__)

DUPLICATE_NAME = "A configuration with this name already exists in the organization"


class ConfigNotFound(NotFound):
    detail = "Configuration not found"


async def create(
    session: AsyncSession,
    org_id: uuid.UUID,
    name: str,
    description: str | None = None,
    created_by: uuid.UUID | None = None,
) -> ConfigTemplate:
    """A new template without versions; 409 when the organisation already has ``name``."""
    await _refuse_taken_name(session, org_id, name)
    template = ConfigTemplate(
        org_id=org_id, name=name, description=description, created_by=created_by
    )
    session.add(template)
    await _flush_unique(session)
    log.info(
        "config template created", extra={"config_id": str(template.id), "org_id": str(org_id)}
    )
    return template


async def list_templates(session: AsyncSession, org_id: uuid.UUID) -> list[ConfigTemplate]:
    """The organisation's templates, by name."""
    rows = await session.scalars(
        select(ConfigTemplate)
        .where(ConfigTemplate.org_id == org_id)
        .order_by(ConfigTemplate.name, ConfigTemplate.id)
    )
    return list(rows)


async def get(session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID) -> ConfigTemplate:
    template = await session.scalar(
        select(ConfigTemplate).where(
            ConfigTemplate.id == template_id, ConfigTemplate.org_id == org_id
        )
    )
    if template is None:
        raise ConfigNotFound()
    return template


async def resolve(session: AsyncSession, org_id: uuid.UUID, name_or_id: str) -> ConfigTemplate:
    """The template with this id, else the one with this name (for the CLI)."""
    try:
        return await get(session, org_id, uuid.UUID(name_or_id))
    except (ValueError, ConfigNotFound):
        pass
    template = await session.scalar(
        select(ConfigTemplate).where(
            ConfigTemplate.org_id == org_id, ConfigTemplate.name == name_or_id
        )
    )
    if template is None:
        raise ConfigNotFound(f"Configuration {name_or_id!r} not found")
    return template


async def update(
    session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID, changes: dict[str, Any]
) -> ConfigTemplate:
    """Apply ``changes`` (``name`` and/or ``description``); 409 when the new name is taken."""
    template = await get(session, org_id, template_id)
    name = changes.get("name")
    if name is not None and name != template.name:
        await _refuse_taken_name(session, org_id, name)
        template.name = name
    if "description" in changes:
        template.description = changes["description"]
    template.updated_at = utcnow()
    await _flush_unique(session)
    return template


async def delete_template(session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID) -> None:
    """Delete the template and all its versions; 409 while an assignment uses it."""
    template = await get(session, org_id, template_id)
    if await assignments.template_in_use(session, template.id):
        raise Conflict("The configuration is deployed to gateways; it cannot be deleted")
    # Versions go with it (ON DELETE CASCADE).
    await session.execute(
        delete(ConfigTemplate)
        .where(ConfigTemplate.id == template.id)
        .execution_options(synchronize_session=False)
    )
    session.expunge(template)
    log.info("config template deleted", extra={"config_id": str(template_id)})


async def _refuse_taken_name(session: AsyncSession, org_id: uuid.UUID, name: str) -> None:
    taken = await session.scalar(
        select(ConfigTemplate.id).where(
            ConfigTemplate.org_id == org_id, ConfigTemplate.name == name
        )
    )
    if taken is not None:
        raise Conflict(DUPLICATE_NAME)


async def _flush_unique(session: AsyncSession) -> None:
    # The check above misses a concurrent request taking the same name; the unique
    # constraint catches it, and it is the same 409.
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(DUPLICATE_NAME) from None
