"""Registration tokens: issue (shown once), list, revoke, and check-and-consume on registration."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import InvalidRegistrationToken, NotFound
from flowgate.core.events import RegistrationTokenRevoked
from flowgate.core.security import digest, new_registration_token
from flowgate.core.uow import UnitOfWork
from flowgate.tokens.models import RegistrationToken

log = logging.getLogger(__name__)


@dataclass
class IssuedToken:
    record: RegistrationToken
    token: str


async def create_token(
    session: AsyncSession,
    org_id: uuid.UUID,
    name: str,
    expires_in_days: int,
    max_uses: int | None = 1,
    created_by: uuid.UUID | None = None,
) -> IssuedToken:
    plain = new_registration_token()
    record = RegistrationToken(
        org_id=org_id,
        token=digest(plain),
        name=name,
        expires_at=utcnow() + timedelta(days=expires_in_days),
        max_uses=max_uses,
        created_by=created_by,
    )
    session.add(record)
    await session.flush()
    log.info(
        "registration token created",
        extra={"token_id": str(record.id), "org_id": str(org_id), "max_uses": max_uses},
    )
    return IssuedToken(record=record, token=plain)


async def list_tokens(session: AsyncSession, org_id: uuid.UUID) -> list[RegistrationToken]:
    rows = await session.scalars(
        select(RegistrationToken)
        .where(RegistrationToken.org_id == org_id)
        .order_by(RegistrationToken.created_at.desc())
    )
    return list(rows)


async def revoke_token(
    uow: UnitOfWork, org_id: uuid.UUID, token_id: uuid.UUID
) -> RegistrationToken:
    """Revoke (idempotent); every replica forgets cached checks of it after the commit."""
    record = await uow.session.scalar(
        select(RegistrationToken).where(
            RegistrationToken.id == token_id, RegistrationToken.org_id == org_id
        )
    )
    if record is None:
        raise NotFound("Registration token not found")
    if record.is_active:
        record.is_active = False
        record.revoked_at = utcnow()
        await uow.session.flush()
        uow.publish(RegistrationTokenRevoked(token_id=record.id, org_id=record.org_id))
        log.info("registration token revoked", extra={"token_id": str(record.id)})
    return record


async def find_usable(session: AsyncSession, plain: str) -> RegistrationToken:
    """The active, unexpired token matching ``plain``; raises the seed's 401 otherwise.

    The lookup is by SHA-256 digest on a unique index, so no per-character comparison of the
    secret ever happens; uses left are checked by :func:`consume`.
    """
    record = await session.scalar(
        select(RegistrationToken).where(RegistrationToken.token == digest(plain))
    )
    if record is None or not record.is_active or record.expires_at <= utcnow():
        log.warning(
            "registration rejected: unknown, revoked or expired token",
            extra={"token_id": str(record.id) if record else None},
        )
        raise InvalidRegistrationToken()
    return record


async def consume(session: AsyncSession, record: RegistrationToken, count: int = 1) -> None:
    """Count ``count`` uses atomically; raises when fewer are left (concurrent-safe)."""
    result = await session.execute(
        update(RegistrationToken)
        .returning(RegistrationToken.id)
        .where(
            RegistrationToken.id == record.id,
            RegistrationToken.is_active.is_(True),
            or_(
                RegistrationToken.max_uses.is_(None),
                RegistrationToken.use_count + count <= RegistrationToken.max_uses,
            ),
        )
        .values(use_count=RegistrationToken.use_count + count, last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.first() is None:
        log.warning("registration rejected: token used up", extra={"token_id": str(record.id)})
        raise InvalidRegistrationToken()
    log.info("registration token used", extra={"token_id": str(record.id), "uses": count})


async def reserve(session: AsyncSession, record: RegistrationToken, wanted: int) -> int:
    """How many of ``wanted`` uses the token has left (0 when revoked), holding its row's
    write lock until the transaction ends, so a following :func:`consume` of at most that
    many cannot fail and no concurrent enrolment (another replica's batch) can take them.

    The lock is taken with a no-op UPDATE rather than ``SELECT ... FOR UPDATE`` because
    SQLite has no row locks: its first write of a transaction takes the database's write lock
    and reads the latest committed row, like PostgreSQL's UPDATE does after waiting."""
    row = (
        await session.execute(
            update(RegistrationToken)
            .where(RegistrationToken.id == record.id)
            .values(use_count=RegistrationToken.use_count)
            .returning(
                RegistrationToken.use_count, RegistrationToken.max_uses, RegistrationToken.is_active
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None or not row.is_active:
        return 0
    if row.max_uses is None:
        return wanted
    left: int = row.max_uses - row.use_count
    return max(0, min(wanted, left))


async def get_usable(session: AsyncSession, token_id: uuid.UUID) -> RegistrationToken:
    """The token by id while it is active and unexpired; the seed's 401 otherwise."""
    record = await session.get(RegistrationToken, token_id)
    if record is None or not record.is_active or record.expires_at <= utcnow():
        raise InvalidRegistrationToken()
    return record


def has_uses_left(record: RegistrationToken) -> bool:
    return record.max_uses is None or record.use_count < record.max_uses
