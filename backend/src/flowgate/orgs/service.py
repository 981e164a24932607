"""Organisations, users and API keys. Services flush but never commit: the caller owns the unit
of work (a request, a CLI command)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, DomainError, Forbidden, NotFound
from flowgate.core.security import digest, hash_password, new_api_key, verify_password
from flowgate.orgs.access import Principal
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
    try:
        await session.flush()
    except IntegrityError:  # created concurrently, after the check above
        raise Conflict("A user with this email already exists") from None
    if org_id is not None:
        await add_membership(session, org_id, user.id, role)
    log.info("user created", extra={"user_id": str(user.id)})
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound("User not found")
    return user


async def add_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    """Make an existing user a member of an organisation; 409 when they already are."""
    exists = await session.scalar(
        select(Membership.id).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    if exists is not None:
        raise Conflict("This user is already a member of this organization")
    membership = Membership(user_id=user_id, org_id=org_id, role=role)
    session.add(membership)
    try:
        await session.flush()
    except IntegrityError:  # added concurrently, after the check above
        raise Conflict("This user is already a member of this organization") from None
    log.info("member added", extra={"user_id": str(user_id), "org_id": str(org_id)})
    return membership


async def add_member(
    session: AsyncSession, org_id: uuid.UUID, email: str, password: str | None, role: Role
) -> tuple[User, Membership]:
    """Add a person to an organisation: a new user when ``password`` is given, else an existing
    user (of another organisation) by email. An org admin never sets the password of an
    existing user, so giving one for an existing email is a 409."""
    email = email.strip().lower()
    existing = await session.scalar(select(User).where(User.email == email))
    if existing is None:
        if password is None:
            raise DomainError("No user has this email: give a password to create one")
        user = await create_user(session, email, password)
        return user, await add_membership(session, org_id, user.id, role)
    if password is not None:
        raise Conflict(
            "A user with this email already exists: omit the password to add them to this "
            "organization (their password stays theirs)"
        )
    return existing, await add_membership(session, org_id, existing.id, role)


async def set_password(session: AsyncSession, user: User, new_password: str) -> int:
    """Store a new password hash and bump the credentials version, which signs out every
    access token issued so far. Returns the new version (for a fresh token)."""
    user.password_hash = hash_password(new_password)
    # Incremented in SQL, so two concurrent changes both count.
    user.credentials_version = User.credentials_version + 1
    await session.flush()
    await session.refresh(user, ["credentials_version"])
    log.info("password changed", extra={"user_id": str(user.id)})
    return user.credentials_version


async def reset_password(
    session: AsyncSession, actor: Principal, user_id: uuid.UUID, new_password: str
) -> None:
    """An administrator sets another user's password.

    Allowed to a superuser, or to a caller who is admin in *every* organisation the user
    belongs to (so no admin can take over an account that also has access elsewhere).
    A superuser's password is reset only by a superuser, and one's own password is changed
    with the current one (``POST /auth/password``). A user who shares no organisation with the
    caller is "not found", so the API does not reveal who exists elsewhere.
    """
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    if actor.user is not None and actor.user.id == user.id:
        raise DomainError(
            "Change your own password with POST /api/v1/auth/password (it needs the current one)"
        )
    if not actor.is_superuser:
        orgs = set(
            await session.scalars(select(Membership.org_id).where(Membership.user_id == user_id))
        )
        if not orgs & actor.roles.keys():
            raise NotFound("User not found")
        if user.is_superuser:
            raise Forbidden("Only a superuser can reset a superuser's password")
        if any(actor.roles.get(org_id) != Role.admin for org_id in orgs):
            raise Forbidden(
                "Resetting a password requires the admin role in every organization the user "
                "belongs to"
            )
    await set_password(session, user, new_password)


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


async def _lock_org(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Serialise membership changes of one organisation until the transaction ends.

    PostgreSQL: a row lock on the organisation (``SELECT ... FOR NO KEY UPDATE``: it excludes
    other holders of this lock but not the key-share locks that inserts of gateways, tokens and
    keys referencing the org take); under READ COMMITTED each later statement then sees what the
    previous holder committed.

    SQLite has no row locks: a write takes the database's single write lock, held until commit,
    and the Python driver opens the transaction only at the first write, so the reads that
    follow see the latest committed state.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(name=Organization.name)
            .execution_options(synchronize_session=False)
        )
    else:
        await session.execute(
            select(Organization.id).where(Organization.id == org_id).with_for_update(key_share=True)
        )


async def change_membership(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID, role: Role | None
) -> Membership | None:
    """Set a member's role, or remove the member (``role=None``), keeping at least one admin.

    The single owner of that rule: concurrent changes in one organisation are serialised (see
    :func:`_lock_org`) and the admin count is read under the lock, so two admins demoting or
    removing each other at once cannot both succeed; the later one gets 409. Returns the
    membership, or None when it was removed.
    """
    await _lock_org(session, org_id)
    membership = await session.scalar(
        select(Membership)
        .where(Membership.org_id == org_id, Membership.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    if membership is None:
        raise NotFound("User not found")
    if membership.role == Role.admin and role != Role.admin:
        others = await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.org_id == org_id,
                Membership.role == Role.admin,
                Membership.user_id != user_id,
            )
        )
        if not others:
            raise Conflict("An organization must keep at least one admin")
    if role is None:
        await session.delete(membership)
        await session.flush()
        log.info("member removed", extra={"user_id": str(user_id), "org_id": str(org_id)})
        return None
    if membership.role != role:
        membership.role = role
        await session.flush()
        log.info(
            "member role changed",
            extra={"user_id": str(user_id), "org_id": str(org_id), "role": role.value},
        )
    return membership


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
