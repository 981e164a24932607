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
from flowgate.core.errors import GatewayNotFound
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
        "(the map their build reported under the same hash; a gateway that reported none is "
        "not checked)",
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
    # The components of each gateway as a deployment sees them: its build's map (by hash).
    wanted = list(dict.fromkeys(body.gateway_ids))
    targets = await gateways.deployment_targets(session, access.org_id, ids=wanted)
    if len(targets) < len(wanted):
        raise GatewayNotFound()
    result = await run_in_threadpool(validate, body.config_yaml)
    errors: list[ConfigError] = list(result.errors)
    if result.ok:
        for target in targets:
            available = components_from_agent_state(target.available_components)
            if available is None:
                continue
            where = f"gateway {target.name!r} ({target.gateway_id})"
            errors += [
                replace(e, message=f"{where}: {e.message}")
                for e in unavailable_components(result.components, available)
            ]
    if errors:
        errors.sort(key=lambda e: (e.line, e.column))
        raise rejection(errors)
    return ValidationOut(valid=True, errors=[])
