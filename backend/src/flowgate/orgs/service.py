"""Organisations, users and API keys. Services flush but never commit: the caller owns the unit
of work (a request, a CLI command)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, NotFound
from flowgate.core.security import digest, hash_password, new_api_key, verify_password
from flowgate.orgs.models import ApiKey, Membership, Organization, Role, User

log = logging.getLogger(__name__)

DEFAULT_ORG = "default"


async def get_org_by_name(session: AsyncSession, name: str) -> Organization:
    org = await session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise NotFound(f"Organization {name!r} not found")
    return org


async def create_org(session: AsyncSession, name: str) -> Organization:
    if await session.scalar(select(Organization.id).where(Organization.name == name)):
        raise Conflict("An organization with this name already exists")
    org = Organization(name=name)
    session.add(org)
    await session.flush()
    log.info("organization created", extra={"org_id": str(org.id)})
    return org


async def create_user(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    org_id: uuid.UUID | None = None,
    role: Role = Role.viewer,
    is_superuser: bool = False,
) -> User:
    email = email.strip().lower()
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("A user with this email already exists")
    user = User(email=email, password_hash=hash_password(password), is_superuser=is_superuser)
    session.add(user)
    await session.flush()
    if org_id is not None:
        session.add(Membership(user_id=user.id, org_id=org_id, role=role))
        await session.flush()
    log.info("user created", extra={"user_id": str(user.id)})
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        log.info("login failed")
        return None
    return user


async def user_orgs(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Organization, Role]]:
    rows = await session.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.name)
    )
    return [(org, role) for org, role in rows.all()]


async def org_members(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[User, Membership]]:
    rows = await session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id)
        .order_by(User.email)
    )
    return [(user, m) for user, m in rows.all()]


async def get_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> Membership:
    membership = await session.scalar(
        select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    if membership is None:
        raise NotFound("User not found")
    return membership


async def ensure_other_admin(session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Refuse a change that would leave the organisation without an admin."""
    admins = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.org_id == org_id,
            Membership.role == Role.admin,
            Membership.user_id != user_id,
        )
    )
    if not admins:
        raise Conflict("An organization must keep at least one admin")


@dataclass
class IssuedApiKey:
    record: ApiKey
    key: str


async def create_api_key(
    session: AsyncSession,
    org_id: uuid.UUID,
    name: str,
    role: Role,
    created_by: uuid.UUID | None = None,
) -> IssuedApiKey:
    key = new_api_key()
    record = ApiKey(
        org_id=org_id,
        name=name,
        key_hash=digest(key),
        prefix=key[:10],
        role=role,
        created_by=created_by,
    )
    session.add(record)
    await session.flush()
    log.info("api key created", extra={"api_key_id": str(record.id), "org_id": str(org_id)})
    return IssuedApiKey(record=record, key=key)


async def list_api_keys(session: AsyncSession, org_id: uuid.UUID) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at)
    )
    return list(rows)


async def revoke_api_key(session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.org_id == org_id))
    if key is None:
        raise NotFound("API key not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        log.info("api key revoked", extra={"api_key_id": str(key.id)})
    return key


@dataclass
class Bootstrap:
    org: Organization
    admin: User
    generated_password: str | None


async def bootstrap(
    session: AsyncSession, admin_email: str, admin_password: str | None
) -> Bootstrap | None:
    """On an empty database, create org ``default`` and its admin; otherwise do nothing."""
    if await session.scalar(select(func.count()).select_from(User)):
        return None
    org = await session.scalar(select(Organization).where(Organization.name == DEFAULT_ORG))
    if org is None:
        org = await create_org(session, DEFAULT_ORG)
    generated = None if admin_password else secrets.token_urlsafe(18)
    admin = await create_user(
        session,
        admin_email,
        admin_password or generated or "",
        org_id=org.id,
        role=Role.admin,
        is_superuser=True,
    )
    return Bootstrap(org=org, admin=admin, generated_password=generated)
