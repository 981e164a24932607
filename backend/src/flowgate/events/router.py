"""``GET /api/v1/events``: the organisation's live events as Server-Sent Events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from flowgate.auth.principal import ViewerAccess, authenticate
from flowgate.core.deps import SettingsDep
from flowgate.core.errors import DomainError
from flowgate.core.uow import UnitOfWork
from flowgate.events.hub import EventHub

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.events
    return hub


HubDep = Annotated[EventHub, Depends(get_hub)]


@router.get(
    "/events",
    tags=["events"],
    operation_id="events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream"}},
)
async def events(
    access: ViewerAccess, request: Request, hub: HubDep, settings: SettingsDep
) -> StreamingResponse:
    """The organisation's events as they happen (``text/event-stream``): ``gateway.registered``,
    ``gateway.status``, ``gateway.changed``, ``gateway.deleted``, ``config.changed``; a final
    ``overflow`` when the client falls behind. Session cookie or bearer credentials, viewer role.

    The request's unit of work (and its database connection) ends when this function returns,
    before the first byte is streamed: an open stream holds no database session.
    """
    stream = hub.open(access.org_id)
    factory: Callable[[], UnitOfWork] = request.app.state.unit_of_work
    org_id = access.org_id

    async def still_allowed() -> bool:
        try:
            async with factory() as uow:
                principal = await authenticate(request, uow.session, settings)
        except DomainError:
            return False
        except Exception as exc:  # the database is unreachable: keep it, check again later
            log.warning("could not recheck an event stream", extra={"error": type(exc).__name__})
            return True
        return org_id in principal.roles

    body = stream.sse(
        settings.events_ping_seconds, settings.events_revalidate_seconds, still_allowed, hub.detach
    )
    # No buffering by proxies (nginx honours this header): events must arrive as they happen.
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )
