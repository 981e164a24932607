"""The configuration template API: templates, their immutable versions, and diffs.

Viewers read; operators create, rename, delete and add versions. Versions have no update or
delete route: a stored version never changes (PUT/PATCH/DELETE on one is 405).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query, Response, status

from flowgate.auth.principal import OperatorAccess, ViewerAccess
from flowgate.configs import templates, versions
from flowgate.configs.models import ConfigVersion
from flowgate.configs.schemas import (
    MAX_VERSION,
    ConfigCreate,
    ConfigTemplateOut,
    ConfigUpdate,
    DiffOut,
    VersionCreate,
    VersionOut,
    VersionPage,
    VersionSummary,
)
from flowgate.core.deps import SessionDep
from flowgate.core.routing import api_router

router = api_router(prefix="/api/v1/configs", tags=["configs"])

VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="Version number")]


def _summary(v: ConfigVersion) -> VersionSummary:
    return VersionSummary(
        id=v.id,
        config_id=v.template_id,
        version=v.version,
        content_type=v.content_type,
        config_hash=v.config_hash,
        message=v.message,
        created_by=v.created_by,
        created_at=v.created_at,
    )


def _version_out(v: ConfigVersion) -> VersionOut:
    return VersionOut(**_summary(v).model_dump(), config_yaml=v.config_yaml)


@router.post("", operation_id="create_config", status_code=status.HTTP_201_CREATED)
async def create_config(
    body: ConfigCreate, access: OperatorAccess, session: SessionDep
) -> ConfigTemplateOut:
    """A new, empty template; the name is unique in the organisation (409 otherwise)."""
    template = await templates.create(
        session, access.org_id, body.name, body.description, access.principal.actor_id
    )
    return ConfigTemplateOut.model_validate(template)


@router.get("", operation_id="list_configs")
async def list_configs(access: ViewerAccess, session: SessionDep) -> list[ConfigTemplateOut]:
    """The organisation's templates, sorted by name."""
    return [
        ConfigTemplateOut.model_validate(t)
        for t in await templates.list_templates(session, access.org_id)
    ]


@router.get("/{config_id}", operation_id="get_config")
async def get_config(
    config_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> ConfigTemplateOut:
    return ConfigTemplateOut.model_validate(await templates.get(session, access.org_id, config_id))


@router.patch("/{config_id}", operation_id="update_config")
async def update_config(
    config_id: uuid.UUID, body: ConfigUpdate, access: OperatorAccess, session: SessionDep
) -> ConfigTemplateOut:
    """Rename or describe the template; its versions are untouched."""
    changes = body.model_dump(exclude_unset=True)
    template = await templates.update(session, access.org_id, config_id, changes)
    return ConfigTemplateOut.model_validate(template)


@router.delete("/{config_id}", operation_id="delete_config", status_code=status.HTTP_204_NO_CONTENT)
async def delete_config(
    config_id: uuid.UUID, access: OperatorAccess, session: SessionDep
) -> Response:
    """Delete the template with all its versions; 409 while it is deployed to gateways."""
    await templates.delete_template(session, access.org_id, config_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{config_id}/versions",
    operation_id="create_config_version",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "Identical to the latest version"},
        422: {"description": "Not a valid configuration: `{detail: {message, errors}}`"},
    },
)
async def create_config_version(
    config_id: uuid.UUID, body: VersionCreate, access: OperatorAccess, session: SessionDep
) -> VersionOut:
    """Store the next numbered version once the body passes validation."""
    record = await versions.add_version(
        session,
        access.org_id,
        config_id,
        body.config_yaml,
        body.content_type,
        body.message,
        access.principal.actor_id,
    )
    return _version_out(record)


@router.get("/{config_id}/versions", operation_id="list_config_versions")
async def list_config_versions(
    config_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="Only versions older than this")
    ] = None,
) -> VersionPage:
    """Versions newest first, without their bodies (read one for its ``config_yaml``)."""
    rows, next_before = await versions.list_versions(
        session, access.org_id, config_id, limit, before
    )
    return VersionPage(items=[_summary(v) for v in rows], next_before=next_before)


@router.get("/{config_id}/versions/{version}", operation_id="get_config_version")
async def get_config_version(
    config_id: uuid.UUID, version: VersionNumber, access: ViewerAccess, session: SessionDep
) -> VersionOut:
    return _version_out(await versions.get_version(session, access.org_id, config_id, version))


@router.get("/{config_id}/diff", operation_id="diff_config_versions")
async def diff_config_versions(
    config_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_VERSION)],
) -> DiffOut:
    """Unified diff (3 lines of context) from version ``from`` to version ``to``."""
    text = await versions.diff(session, access.org_id, config_id, from_version, to_version)
    return DiffOut(from_version=from_version, to_version=to_version, diff=text)
