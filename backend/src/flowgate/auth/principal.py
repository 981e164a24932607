"""Who is calling: resolving a credential to a principal and checking its role in an org.

:func:`authenticate` is the one place credentials are resolved: ``Authorization: Bearer`` (an
access token or an API key) when present, else the browser session cookie, which
:mod:`flowgate.auth.sessions` checks (and, for methods that change state, its CSRF token).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.auth import sessions
from flowgate.core import audit
from flowgate.core.db import utcnow
from flowgate.core.deps import SessionDep, SettingsDep
from flowgate.core.errors import DomainError, Forbidden, NotAuthenticated, NotFound
from flowgate.core.security import (
    ACCESS_TOKEN_TYPE,
    API_KEY_PREFIX,
    bearer_token,
    decode_jwt,
    digest,
)
from flowgate.core.settings import Settings
from flowgate.orgs.access import OrgAccess, Principal
from flowgate.orgs.models import ApiKey, Membership, Role, User

LAST_USED_RESOLUTION = timedelta(minutes=1)


async def load_principal(session: AsyncSession, token: str, signing_key: str) -> Principal | None:
    """The principal of an API key or an access token; None when it is unknown, revoked,
    expired, for an inactive user, or issued before that user's password last changed."""
    if token.startswith(API_KEY_PREFIX):
        key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(token)))
        if key is None or key.revoked_at is not None:
            return None
        now = utcnow()
        # Coarse on purpose: one write a minute per key, not one per request.
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            key.last_used_at = now
        return Principal(roles={key.org_id: key.role}, api_key=key)
    claims = decode_jwt(token, signing_key, ACCESS_TOKEN_TYPE)
    if claims is None:
        return None
    return await user_principal(session, claims)


async def user_principal(session: AsyncSession, claims: dict[str, Any]) -> Principal | None:
    """The principal of a user token's verified claims (access or session token); None for
    an unknown or inactive user, or a token issued before the password last changed."""
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        return None
    # The user and their memberships in one round trip (a row per membership, or one row
    # with no org for a user who has none): every authenticated request pays for this.
    rows = (
        await session.execute(
            select(User, Membership.org_id, Membership.role)
            .outerjoin(Membership, Membership.user_id == User.id)
            .where(User.id == user_id)
        )
    ).all()
    if not rows:
        return None
    user = rows[0][0]
    if not user.is_active:
        return None
    # Tokens from before versions existed carry none: they belong to version 0.
    version = claims.get("ver", 0)
    if type(version) is not int or version != user.credentials_version:
        return None  # issued before the password last changed
    roles = {org_id: role for _, org_id, role in rows if org_id is not None}
    return Principal(roles=roles, user=user)


async def authenticate(request: Request, session: AsyncSession, settings: Settings) -> Principal:
    """The caller of ``request``, or a 401 (403 for a session request failing its CSRF check).

    A bearer token wins over the session cookie and needs no CSRF token: browsers never add an
    ``Authorization`` header on their own, so another site cannot make one ride along.
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        principal = await load_principal(session, token, settings.signing_key)
        if principal is None:
            raise NotAuthenticated("Invalid credentials")
        return principal
    cookie = sessions.cookie_token(request)
    if cookie is None:
        raise NotAuthenticated()
    claims = sessions.verify(request, cookie, settings)
    principal = await user_principal(session, claims)
    if principal is None:
        raise sessions.SessionExpired()
    principal.via_session = True
    return principal


async def current_principal(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Principal:
    principal = await authenticate(request, session, settings)
    orgs = tuple(principal.roles)
    if principal.user is not None:
        audit.note_actor(request, "user", principal.user.id, principal.user.email, orgs)
    elif principal.api_key is not None:
        audit.note_actor(request, "api_key", principal.api_key.id, principal.api_key.name, orgs)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def resolve_org(principal: Principal, org_id: uuid.UUID | None, minimum: Role) -> OrgAccess:
    """Pick the organisation of a request and check the caller's role in it.

    An org the caller does not belong to is reported as not found (404), never as forbidden,
    so the API does not reveal which organisations exist.
    """
    if org_id is None:
        if len(principal.roles) != 1:
            raise DomainError("org_id is required: you belong to several organizations")
        org_id = next(iter(principal.roles))
    role = principal.roles.get(org_id)
    if role is None:
        raise NotFound("Organization not found")
    if role.rank < minimum.rank:
        raise Forbidden(f"Requires the {minimum.value} role in this organization")
    return OrgAccess(org_id=org_id, role=role, principal=principal)


OrgIdQuery = Annotated[
    uuid.UUID | None,
    Query(description="Organization; optional when the caller belongs to only one"),
]


def _noted(request: Request, access: OrgAccess) -> OrgAccess:
    audit.note_org(request, access.org_id)  # the organisation the audit entry belongs to
    return access


async def _viewer(
    request: Request, principal: PrincipalDep, org_id: OrgIdQuery = None
) -> OrgAccess:
    return _noted(request, resolve_org(principal, org_id, Role.viewer))


async def _operator(
    request: Request, principal: PrincipalDep, org_id: OrgIdQuery = None
) -> OrgAccess:
    return _noted(request, resolve_org(principal, org_id, Role.operator))


async def _admin(request: Request, principal: PrincipalDep, org_id: OrgIdQuery = None) -> OrgAccess:
    return _noted(request, resolve_org(principal, org_id, Role.admin))


#: Dependencies for endpoints needing at least that role in the request's organisation.
ViewerAccess = Annotated[OrgAccess, Depends(_viewer)]
OperatorAccess = Annotated[OrgAccess, Depends(_operator)]
AdminAccess = Annotated[OrgAccess, Depends(_admin)]
