"""Process-wide collaborators shared by requests and background tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from flowgate.core.db import Database
from flowgate.core.settings import Settings
from flowgate.fleet.presence import Presence

if TYPE_CHECKING:
    from flowgate.fleet.hub import Hub
    from flowgate.gateways.identity import IdentityCache


@dataclass
class Runtime:
    settings: Settings
    db: Database
    presence: Presence
    identities: IdentityCache
    hub: Hub
    extras: dict[str, object] = field(default_factory=dict)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
