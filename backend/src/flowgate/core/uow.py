"""The unit of work: one transaction, and the effects that must follow its commit.

Every request (a FastAPI dependency), OpAMP message that needs the database, CLI command and
background job opens exactly one :class:`UnitOfWork`. Services add and flush through
``uow.session`` but never commit; the owner of the unit of work commits on success and rolls
back on error. Anything that must happen only once the change is durable — dropping a cached
credential, telling other replicas, closing a revoked agent's socket — is queued with
:meth:`UnitOfWork.publish` or :meth:`UnitOfWork.after_commit` and runs after the commit, in the
order queued, in one place (:meth:`UnitOfWork.commit`). A rollback discards them.

Why the order matters: invalidating a cache *before* the commit would let a request that
arrives in between load and cache the old row again, keeping a revoked token alive.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from flowgate.core import outage
from flowgate.core.events import Event

log = logging.getLogger(__name__)

Effect = Callable[[], Awaitable[None] | None]
Publisher = Callable[[list[Event]], Awaitable[None]]


async def _no_publisher(_: list[Event]) -> None:
    return None


class UnitOfWork:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], publish: Publisher | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._publish = publish or _no_publisher
        self._session: AsyncSession | None = None
        self._effects: list[Effect | Event] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessionmaker()
        return self._session

    def publish(self, event: Event) -> None:
        """Publish ``event`` on the bus once this unit of work has committed."""
        self._effects.append(event)

    def after_commit(self, effect: Effect) -> None:
        """Run ``effect`` (sync or async) once this unit of work has committed."""
        self._effects.append(effect)

    async def commit(self) -> None:
        """Commit, then run the queued effects in order. An effect that fails is logged and
        does not undo the commit or stop the effects after it."""
        if self._session is not None:
            # A session that never began a transaction commits without touching the database,
            # so only a real commit proves the database is reachable again.
            used = self._session.in_transaction()
            await self._session.commit()
            if used:
                outage.tracker.succeeded()
        effects, self._effects = self._effects, []
        events: list[Event] = []
        for effect in effects:
            if isinstance(effect, Event):
                events.append(effect)
                continue
            if events:  # keep the queued order between events and other effects
                await self._run_publish(events)
                events = []
            try:
                result = effect()
                if result is not None:
                    await result
            except Exception:
                log.exception("post-commit effect failed")
        if events:
            await self._run_publish(events)

    async def _run_publish(self, events: list[Event]) -> None:
        try:
            await self._publish(events)
        except Exception:
            log.exception("publishing events failed", extra={"events": len(events)})

    async def rollback(self) -> None:
        self._effects.clear()
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.rollback()
        finally:
            await self.close()


def unit_of_work_factory(
    sessionmaker: async_sessionmaker[AsyncSession], publish: Publisher | None = None
) -> Callable[[], UnitOfWork]:
    def make() -> UnitOfWork:
        return UnitOfWork(sessionmaker, publish)

    return make


__all__ = ["Effect", "Publisher", "UnitOfWork", "unit_of_work_factory"]
