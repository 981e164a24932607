"""``POST /api/v1/configs/validate``: check a configuration, also against gateways' components.

It lives here, above both ``configs`` and ``gateways``, because it reads what gateways reported;
the template API (``configs/router.py``) stays below ``gateways``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flowgate.auth.principal import ViewerAccess
from flowgate.configs.base import rejection
from flowgate.configs.validation import (
    ConfigError,
    components_from_agent_state,
    unavailable_components,
    validate,
)
from flowgate.core.deps import SessionDep
from flowgate.core.routing import api_router
from flowgate.core.schemas import RequestBody
from flowgate.gateways import repository as gateways

# A dry run changes nothing: not audited.
router = api_router(prefix="/api/v1/configs", tags=["configs"], audit=False)


class ConfigErrorOut(BaseModel):
    line: int = Field(description="1-based line of the key or value at fault")
    column: int = Field(description="1-based column of the key or value at fault")
    message: str


class ConfigRejectedDetail(BaseModel):
    message: str
    errors: list[ConfigErrorOut]


class ConfigRejectedOut(BaseModel):
    """The 422 body of every endpoint that refuses a configuration."""

    detail: ConfigRejectedDetail


#: For ``responses=`` of routes that may refuse a configuration.
CONFIG_REJECTED: dict[int | str, dict[str, Any]] = {
    422: {"model": ConfigRejectedOut, "description": "The configuration is not valid"}
}


class ValidateRequest(RequestBody):
    config_yaml: str = Field(description="The collector configuration (YAML)")
    gateway_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=1000,
        description="Also check against the components these gateways reported over OpAMP "
        "(a gateway that reported none is not checked)",
    )


class ValidationOut(BaseModel):
    valid: bool
    errors: list[ConfigErrorOut]


@router.post("/validate", operation_id="validate_config", responses=CONFIG_REJECTED)
async def validate_config(
    body: ValidateRequest, access: ViewerAccess, session: SessionDep
) -> ValidationOut:
    """Check a configuration without storing it: YAML, the Collector's configuration shape
    and, with ``gateway_ids``, that each of those gateways has every component type it uses.
    200 when valid; 422 with every error and its line and column otherwise."""
    targets = [
        await gateways.get(session, access.org_id, gateway_id)
        for gateway_id in dict.fromkeys(body.gateway_ids)
    ]
    result = await run_in_threadpool(validate, body.config_yaml)
    errors: list[ConfigError] = list(result.errors)
    if result.ok:
        for gateway in targets:
            state = gateway.opamp_state or {}
            available = components_from_agent_state(state.get("available_components"))
            if available is None:
                continue
            errors += [
                replace(e, message=f"gateway {gateway.name!r} ({gateway.id}): {e.message}")
                for e in unavailable_components(result.components, available)
            ]
    if errors:
        errors.sort(key=lambda e: (e.line, e.column))
        raise rejection(errors)
    return ValidationOut(valid=True, errors=[])
