"""Who an OpAMP peer is: its bearer token resolved to a credential, with admission control.

A gateway's own OpAMP token (a JWT) is checked against the identity cache (no I/O when cached;
after a restart the misses of many agents are read together, see :mod:`flowgate.opamp.loader`);
a registration token (enrolment) is looked up by digest and remembered for
``REGISTRATION_CACHE_SECONDS``, because agents that cannot take the OpAMP token we offer poll
with it for good. A revocation anywhere drops these caches on every replica (bus events).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from flowgate.core.db import utcnow
from flowgate.core.errors import InvalidRegistrationToken, NotAuthenticated
from flowgate.core.security import digest
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork
from flowgate.gateways.identity import GatewayIdentity, IdentityCache
from flowgate.opamp.loader import Coalescer
from flowgate.tokens import service as tokens

REGISTRATION_CACHE_SECONDS = 10.0


class Busy(Exception):
    """Too much database work is queued; the agent should retry after Retry-After.

    ``seconds``: when this agent should come back, when the refusing queue can tell (the
    enroller gives each refused agent a slot after its queue, at its measured rate); the
    Retry-After is then that, not the configured ceiling, so a refused storm comes back while
    the server can take it, and not all at once."""

    def __init__(self, seconds: float | None = None) -> None:
        super().__init__("too much queued work" if seconds is None else f"retry in {seconds} s")
        self.seconds = seconds


class RetryLater(Exception):
    """A transient conflict (another enrolment of the same gateway is committing): retry soon."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"retry in {seconds} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Credential:
    """What the agent authenticated with: its OpAMP token, or a registration token (enrol)."""

    kind: Literal["opamp", "registration"]
    org_id: uuid.UUID
    ident: GatewayIdentity | None = None
    token_id: uuid.UUID | None = None
    #: The gateway's OpAMP token as presented (kind ``opamp`` only), so the own-metrics offer
    #: can carry it; never printed (``repr=False``) nor compared.
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def shared(self) -> bool:
        """A registration token may be shared by a whole fleet; an OpAMP token never is."""
        return self.kind == "registration"


class Admission:
    """Admission control for OpAMP work that needs the database (enrolments, loading an agent
    after a restart). At most ``FLOWGATE_OPAMP_DB_CONCURRENCY`` run at once, so a reconnect
    storm cannot drain the connection pool that people's requests and the heartbeat flusher
    share; past ``FLOWGATE_OPAMP_MAX_QUEUED`` waiters, :class:`Busy` tells the agent to come
    back later (503 + Retry-After, or UNAVAILABLE)."""

    def __init__(self, concurrency: int, max_queued: int) -> None:
        self._gate = asyncio.Semaphore(concurrency)
        self._max_queued = max_queued
        self._queued = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._queued >= self._max_queued:
            raise Busy()
        self._queued += 1
        try:
            await self._gate.acquire()
        finally:
            self._queued -= 1
        try:
            yield
        finally:
            self._gate.release()


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        identities: IdentityCache,
        unit_of_work: Callable[[], UnitOfWork],
        admission: Admission,
    ) -> None:
        self._identities = identities
        self._unit_of_work = unit_of_work
        self._admission = admission
        self._registration_cache: dict[str, tuple[float, Credential]] = {}
        self._registration_reads: dict[str, asyncio.Future[Credential]] = {}
        self._registration_generation = 0
        #: Identity-cache misses (a reconnect storm) are read many to a query, in one slot.
        self._identity_reads: Coalescer[uuid.UUID, GatewayIdentity] = Coalescer(
            "identity", self._read_identities, admission.slot
        )

    async def authenticate(self, token: str | None) -> Credential:
        """Resolve the bearer token of an upgrade or POST; raises a 401 domain error."""
        if not token:
            raise NotAuthenticated("Missing bearer token")
        if token.count(".") == 2:  # a JWT: the gateway's OpAMP token
            return Credential("opamp", *await self._opamp(token), token=token)
        key = digest(token)
        cached = self._registration_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # A fleet shares one registration token: when its cached check expires mid-storm,
        # the agents arriving meanwhile wait for the one lookup instead of each making its own.
        inflight = self._registration_reads.get(key)
        if inflight is None:
            inflight = asyncio.ensure_future(self._registration(token, key))
            self._registration_reads[key] = inflight
            inflight.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(inflight)

    def _read_done(self, key: str, done: asyncio.Future[Credential]) -> None:
        if self._registration_reads.get(key) is done:  # not a newer lookup after a revocation
            del self._registration_reads[key]
        if not done.cancelled():
            done.exception()  # retrieved here, even when every waiter went away meanwhile

    async def _registration(self, token: str, key: str) -> Credential:
        generation = self._registration_generation
        async with self._admission.slot(), self._unit_of_work() as uow:
            try:
                record = await tokens.find_usable(uow.session, token)
            except InvalidRegistrationToken:
                raise NotAuthenticated("Invalid OpAMP or registration token") from None
        cred = Credential("registration", record.org_id, token_id=record.id)
        # Revocation reaches this cache through the bus at once; expiry within the TTL; uses
        # are counted when an agent enrols, in the database.
        ttl = min(REGISTRATION_CACHE_SECONDS, (record.expires_at - utcnow()).total_seconds())
        if len(self._registration_cache) > 10_000:
            self._registration_cache.clear()
        if generation == self._registration_generation:  # no revocation while it was read
            self._registration_cache[key] = (time.monotonic() + ttl, cred)
        return cred

    async def _opamp(self, token: str) -> tuple[uuid.UUID, GatewayIdentity]:
        gateway_id, org_id = self._identities.claims(token)  # a bad token: 401 without I/O
        ident = self._identities.cached(gateway_id)  # the common case: no I/O at all
        if ident is None:
            ident = await self._identity_reads.get(gateway_id)
        ident = self._identities.verify(token, gateway_id, org_id, ident)
        return ident.org_id, ident

    async def _read_identities(
        self, gateway_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, GatewayIdentity]:
        async with self._unit_of_work() as uow:
            return await self._identities.load_many(uow.session, gateway_ids)

    def forget_registration_tokens(self) -> None:
        """A registration token was revoked: stop trusting cached checks at once (and what a
        lookup still running finds: it answers its waiters but is not cached)."""
        self._registration_generation += 1
        self._registration_cache.clear()
        self._registration_reads.clear()
