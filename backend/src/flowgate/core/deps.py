"""FastAPI dependency aliases shared by every domain router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work: committed when the endpoint returns, rolled back when it
    raises; its post-commit effects run right after the commit."""
    factory: Callable[[], UnitOfWork] = request.app.state.unit_of_work
    async with factory() as uow:
        yield uow


SettingsDep = Annotated[Settings, Depends(get_settings)]
#: Function scope: the unit of work commits (and its effects run) before the response is sent,
#: so a client that has its answer (say, a new registration token) can rely on the write in its
#: next request, on any replica.
UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def get_session(uow: UowDep) -> AsyncSession:
    return uow.session


#: The session of the request's unit of work (the same one ``UowDep`` holds).
SessionDep = Annotated[AsyncSession, Depends(get_session)]
