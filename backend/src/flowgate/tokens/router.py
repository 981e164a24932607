from __future__ import annotations

import uuid

from fastapi import status

from flowgate.auth.principal import OperatorAccess
from flowgate.core.deps import SessionDep, SettingsDep, UowDep
from flowgate.core.routing import api_router
from flowgate.tokens import service
from flowgate.tokens.schemas import (
    RegistrationTokenCreate,
    RegistrationTokenCreated,
    RegistrationTokenOut,
)

router = api_router(prefix="/api/v1/registration-tokens", tags=["registration-tokens"])


@router.post("", operation_id="create_registration_token", status_code=status.HTTP_201_CREATED)
async def create_registration_token(
    body: RegistrationTokenCreate,
    access: OperatorAccess,
    session: SessionDep,
    settings: SettingsDep,
) -> RegistrationTokenCreated:
    issued = await service.create_token(
        session,
        access.org_id,
        body.name,
        body.expires_in_days or settings.registration_token_default_days,
        body.max_uses,
        access.principal.actor_id,
    )
    out = RegistrationTokenOut.model_validate(issued.record)
    return RegistrationTokenCreated(**out.model_dump(), token=issued.token)


@router.get("", operation_id="list_registration_tokens")
async def list_registration_tokens(
    access: OperatorAccess, session: SessionDep
) -> list[RegistrationTokenOut]:
    return [
        RegistrationTokenOut.model_validate(t)
        for t in await service.list_tokens(session, access.org_id)
    ]


@router.delete("/{token_id}", operation_id="revoke_registration_token")
async def revoke_registration_token(
    token_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> RegistrationTokenOut:
    """Revoke the token; every replica stops accepting it as soon as this commits."""
    record = await service.revoke_token(uow, access.org_id, token_id)
    return RegistrationTokenOut.model_validate(record)
