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
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.errors import InvalidOpAMPToken
from flowgate.core.security import OPAMP_TOKEN_TYPE, decode_jwt, digest, digests_equal
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

    async def _load(self, session: AsyncSession, gateway_id: uuid.UUID) -> GatewayIdentity | None:
        cached = self.cached(gateway_id)
        if cached is not None:
            return cached
        return (await self.load_many(session, [gateway_id])).get(gateway_id)

    async def load_many(
        self, session: AsyncSession, gateway_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, GatewayIdentity]:
        """Read and cache the identities of many gateways in one query (a reconnect storm
        after a restart: see :mod:`flowgate.opamp.loader`). A gateway that is gone is left
        out. Only the columns an identity needs are read, not the stored OpAMP state."""
        generation = self._generation
        rows = (
            await session.execute(
                select(
                    Gateway.id,
                    Gateway.org_id,
                    Gateway.instance_id,
                    Gateway.name,
                    Gateway.opamp_token,
                    Gateway.status,
                ).where(Gateway.id.in_(gateway_ids))
            )
        ).all()
        found = {row[0]: GatewayIdentity(*row) for row in rows}
        if generation == self._generation:
            expires = time.monotonic() + self._ttl
            for gateway_id in gateway_ids:
                if gateway_id in found:
                    self._entries[gateway_id] = (expires, found[gateway_id])
                else:
                    self._entries.pop(gateway_id, None)
        return found

    def cached(self, gateway_id: uuid.UUID) -> GatewayIdentity | None:
        """The gateway's cached identity; None when the database must be asked."""
        cached = self._entries.get(gateway_id)
        if cached is None or cached[0] <= time.monotonic():
            return None
        return cached[1]

    def claims(self, token: str | None) -> tuple[uuid.UUID, uuid.UUID]:
        """(gateway id, organisation id) of a well-signed OpAMP token of the right type;
        raises the 401 at once for a token whose signature, type, expiry or claims are wrong."""
        claims = decode_jwt(token, self._key, OPAMP_TOKEN_TYPE) if token else None
        if claims is None:
            log.warning("opamp auth failed: bad signature, type or expiry")
            raise InvalidOpAMPToken()
        try:
            return uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims.get("org_id")))
        except ValueError:
            log.warning("opamp auth failed: malformed claims")
            raise InvalidOpAMPToken() from None

    async def authenticate(self, session: AsyncSession, token: str | None) -> GatewayIdentity:
        """Validate an OpAMP token: signature, type, gateway existence, org match and that it is
        the gateway's current token. Raises the seed's 401 "Invalid OpAMP token"."""
        gateway_id, org_id = self.claims(token)
        assert token is not None
        return self.verify(token, gateway_id, org_id, await self._load(session, gateway_id))

    def verify(
        self,
        token: str,
        gateway_id: uuid.UUID,
        org_id: uuid.UUID,
        ident: GatewayIdentity | None,
    ) -> GatewayIdentity:
        """Check ``token`` (whose :meth:`claims` are ``gateway_id`` and ``org_id``) against its
        gateway's identity as read (None: no such gateway): same organisation and the
        gateway's current token. Raises the seed's 401 "Invalid OpAMP token"."""
        if (
            ident is None
            or ident.gateway_id != gateway_id
            or ident.org_id != org_id
            or not digests_equal(ident.token_digest, digest(token))
        ):
            log.warning(
                "opamp auth failed: unknown gateway or superseded token",
                extra={"gateway_id": str(gateway_id)},
            )
            raise InvalidOpAMPToken()
        return ident
