"""FastAPI dependency aliases shared by every domain router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core import outage
from flowgate.core.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    used = False
    async for session in request.app.state.db.session():
        yield session
        # Runs after the route, before the commit. A session that never began a transaction
        # commits without touching the database, so its success proves nothing.
        used = session.in_transaction()
    if used:
        outage.tracker.succeeded()  # the commit reached the database: any outage is over


SettingsDep = Annotated[Settings, Depends(get_settings)]
#: Function scope: the unit of work commits before the response is sent, so a client that has
#: its answer (say, a new registration token) can rely on the write in its next request.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
