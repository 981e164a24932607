"""Checking OpAMP tokens, with a short-lived cache so a heartbeat costs no database read.

A deactivation, deletion or re-registration publishes an event after it commits; every replica
drops the entry when it arrives (within milliseconds over Redis). ``TTL_SECONDS`` bounds how long
an entry could outlive a lost event (a Redis outage), and the presence flush's credential guard
keeps what such a heartbeat buffered out of the database.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.errors import InvalidOpAMPToken
from flowgate.core.security import OPAMP_TOKEN_TYPE, decode_jwt, digest, digests_equal
from flowgate.gateways import repository
from flowgate.gateways.models import Gateway, GatewayStatus

log = logging.getLogger(__name__)

TTL_SECONDS = 10.0


@dataclass(frozen=True)
class GatewayIdentity:
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    instance_id: str
    name: str
    token_digest: str | None
    status: GatewayStatus


class IdentityCache:
    def __init__(self, signing_key: str, ttl: float = TTL_SECONDS) -> None:
        self._key = signing_key
        self._ttl = ttl
        self._entries: dict[uuid.UUID, tuple[float, GatewayIdentity]] = {}
        #: Bumped by every invalidation, so a read that started before one cannot cache what
        #: it read afterwards (it may predate the change the invalidation announced).
        self._generation = 0

    def invalidate(self, gateway_id: uuid.UUID) -> None:
        self._generation += 1
        self._entries.pop(gateway_id, None)

    def _identity(self, gateway: Gateway) -> GatewayIdentity:
        return GatewayIdentity(
            gateway.id,
            gateway.org_id,
            gateway.instance_id,
            gateway.name,
            gateway.opamp_token,
            gateway.status,
        )

    async def _load(self, session: AsyncSession, gateway_id: uuid.UUID) -> GatewayIdentity | None:
        cached = self._entries.get(gateway_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        generation = self._generation
        gateway = await repository.by_id(session, gateway_id)
        if gateway is None:
            self._entries.pop(gateway_id, None)
            return None
        ident = self._identity(gateway)
        if generation == self._generation:
            self._entries[gateway.id] = (time.monotonic() + self._ttl, ident)
        return ident

    def _claims(self, token: str | None) -> tuple[uuid.UUID, uuid.UUID]:
        claims = decode_jwt(token, self._key, OPAMP_TOKEN_TYPE) if token else None
        if claims is None:
            log.warning("opamp auth failed: bad signature, type or expiry")
            raise InvalidOpAMPToken()
        try:
            return uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims.get("org_id")))
        except ValueError:
            log.warning("opamp auth failed: malformed claims")
            raise InvalidOpAMPToken() from None

    def needs_database(self, token: str) -> bool:
        """True when checking ``token`` will query the database (its gateway is not cached).
        Raises the 401 at once for a token whose signature, type or claims are wrong."""
        gateway_id, _ = self._claims(token)
        cached = self._entries.get(gateway_id)
        return cached is None or cached[0] <= time.monotonic()

    async def authenticate(self, session: AsyncSession, token: str | None) -> GatewayIdentity:
        """Validate an OpAMP token: signature, type, gateway existence, org match and that it is
        the gateway's current token. Raises the seed's 401 "Invalid OpAMP token"."""
        gateway_id, org_id = self._claims(token)
        ident = await self._load(session, gateway_id)
        assert token is not None
        if (
            ident is None
            or ident.org_id != org_id
            or not digests_equal(ident.token_digest, digest(token))
        ):
            log.warning(
                "opamp auth failed: unknown gateway or superseded token",
                extra={"gateway_id": str(gateway_id)},
            )
            raise InvalidOpAMPToken()
        return ident
