"""People and access: login, the caller's identity, organisations, members and API keys."""

from __future__ import annotations

import uuid

from fastapi import Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.auth import sessions
from flowgate.auth.principal import AdminAccess, PrincipalDep
from flowgate.auth.throttle import LoginThrottle, LoginThrottleDep, client_address
from flowgate.core import audit
from flowgate.core.deps import SessionDep, SettingsDep
from flowgate.core.errors import DomainError, Forbidden, NotAuthenticated
from flowgate.core.routing import api_router
from flowgate.core.security import access_token, verify_password
from flowgate.orgs import service
from flowgate.orgs.models import Membership, Organization, Role, User
from flowgate.orgs.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    Me,
    MemberOut,
    OrgCreate,
    OrgOut,
    OrgRole,
    PasswordChange,
    PasswordReset,
    RoleUpdate,
    SessionOut,
    TokenResponse,
    UserCreate,
)

router = api_router(prefix="/api/v1")


def _member(user: User, role: Role) -> MemberOut:
    return MemberOut(
        id=user.id,
        email=user.email,
        role=role,
        is_active=user.is_active,
        created_at=user.created_at,
    )


async def _check_password(
    body: LoginRequest, request: Request, session: AsyncSession, throttle: LoginThrottle
) -> User:
    """The user whose email and password these are, under the sign-in throttle; else 401."""
    attempt = throttle.begin(body.email, client_address(request))
    user = await service.authenticate(session, body.email, body.password)
    if user is None:
        throttle.failed(attempt)
        raise NotAuthenticated("Incorrect email or password")
    throttle.succeeded(attempt)
    audit.note_actor(request, "user", user.id, user.email)
    return user


@router.post(
    "/auth/login",
    tags=["auth"],
    operation_id="login",
    responses={429: {"description": "Too many failed sign-ins; see Retry-After"}},
)
async def login(
    body: LoginRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
) -> TokenResponse:
    user = await _check_password(body, request, session, throttle)
    token = access_token(
        user.id, settings.access_token_ttl_minutes, settings.signing_key, user.credentials_version
    )
    return TokenResponse(access_token=token)


@router.post(
    "/auth/session",
    tags=["auth"],
    operation_id="sign_in",
    responses={429: {"description": "Too many failed sign-ins; see Retry-After"}},
)
async def sign_in(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
) -> SessionOut:
    """Sign a browser in: sets the ``flowgate_session`` cookie (HttpOnly) and the
    ``flowgate_csrf`` cookie, whose value requests that change state send back in
    ``X-CSRF-Token``. Throttled like ``/auth/login``."""
    user = await _check_password(body, request, session, throttle)
    sessions.issue(response, request, settings, user.id, user.credentials_version)
    return SessionOut(user=await _user_me(session, user))


@router.delete(
    "/auth/session",
    tags=["auth"],
    operation_id="sign_out",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def sign_out(request: Request, response: Response, settings: SettingsDep) -> None:
    """Sign the browser out: clears both session cookies (needs no valid session)."""
    sessions.clear(response, request, settings)


@router.post(
    "/auth/password",
    tags=["auth"],
    operation_id="change_password",
    responses={429: {"description": "Too many wrong current passwords; see Retry-After"}},
)
async def change_password(
    body: PasswordChange,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
) -> TokenResponse:
    """Change one's own password. Every access token and browser session issued before stops
    working; the answer carries a fresh token (and, when a browser session made the change, a
    fresh session cookie). Wrong current passwords count as failed sign-ins (throttled)."""
    user = principal.user
    if user is None:
        raise Forbidden("API keys have no password")
    attempt = throttle.begin(user.email, client_address(request))
    if not verify_password(body.current_password, user.password_hash):
        throttle.failed(attempt)
        raise DomainError("The current password is incorrect")
    throttle.succeeded(attempt)
    version = await service.set_password(session, user, body.new_password)
    token = access_token(user.id, settings.access_token_ttl_minutes, settings.signing_key, version)
    if principal.via_session:
        sessions.issue(response, request, settings, user.id, version)
    return TokenResponse(access_token=token)


async def _user_me(session: AsyncSession, user: User) -> Me:
    orgs = await service.user_orgs(session, user.id)
    return Me(
        id=user.id,
        email=user.email,
        is_superuser=user.is_superuser,
        organizations=[OrgRole(id=o.id, name=o.name, role=r) for o, r in orgs],
    )


@router.get("/auth/me", tags=["auth"], operation_id="me")
async def me(principal: PrincipalDep, session: SessionDep) -> Me:
    if principal.user is not None:
        return await _user_me(session, principal.user)
    assert principal.api_key is not None
    org = await session.get(Organization, principal.api_key.org_id)
    assert org is not None
    return Me(
        id=None,
        email=None,
        is_superuser=False,
        api_key_id=principal.api_key.id,
        organizations=[OrgRole(id=org.id, name=org.name, role=principal.api_key.role)],
    )


@router.get("/orgs", tags=["orgs"], operation_id="list_orgs")
async def list_orgs(principal: PrincipalDep, session: SessionDep) -> list[OrgOut]:
    orgs = [await session.get(Organization, org_id) for org_id in principal.roles]
    return sorted((OrgOut.model_validate(o) for o in orgs if o), key=lambda o: o.name)


@router.post("/orgs", tags=["orgs"], operation_id="create_org", status_code=status.HTTP_201_CREATED)
async def create_org(body: OrgCreate, principal: PrincipalDep, session: SessionDep) -> OrgOut:
    if not principal.is_superuser or principal.user is None:
        raise Forbidden("Only superusers can create organizations")
    org = await service.create_org(session, body.name)
    session.add(Membership(user_id=principal.user.id, org_id=org.id, role=Role.admin))
    return OrgOut.model_validate(org)


@router.get("/users", tags=["users"], operation_id="list_users")
async def list_users(access: AdminAccess, session: SessionDep) -> list[MemberOut]:
    members = await service.org_members(session, access.org_id)
    return [_member(u, m.role) for u, m in members]


@router.post(
    "/users", tags=["users"], operation_id="create_user", status_code=status.HTTP_201_CREATED
)
async def create_user(body: UserCreate, access: AdminAccess, session: SessionDep) -> MemberOut:
    """Add a member: a new user (with ``password``), or an existing user of another
    organisation (by email, without ``password``; their password is left alone)."""
    user, membership = await service.add_member(
        session, access.org_id, body.email, body.password, body.role
    )
    return _member(user, membership.role)


@router.patch("/users/{user_id}", tags=["users"], operation_id="update_user_role")
async def update_user_role(
    user_id: uuid.UUID, body: RoleUpdate, access: AdminAccess, session: SessionDep
) -> MemberOut:
    membership = await service.change_membership(session, access.org_id, user_id, body.role)
    user = await session.get(User, user_id)
    assert membership is not None and user is not None
    return _member(user, membership.role)


@router.delete(
    "/users/{user_id}",
    tags=["users"],
    operation_id="remove_user",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def remove_user(user_id: uuid.UUID, access: AdminAccess, session: SessionDep) -> None:
    """Remove the user from the organisation (the account itself stays)."""
    await service.change_membership(session, access.org_id, user_id, None)


@router.post(
    "/users/{user_id}/password",
    tags=["users"],
    operation_id="reset_user_password",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def reset_user_password(
    user_id: uuid.UUID, body: PasswordReset, principal: PrincipalDep, session: SessionDep
) -> None:
    """Set another user's password (superusers, or admins of every org the user is in).
    The user's existing access tokens stop working."""
    await service.reset_password(session, principal, user_id, body.new_password)


@router.get("/api-keys", tags=["api-keys"], operation_id="list_api_keys")
async def list_api_keys(access: AdminAccess, session: SessionDep) -> list[ApiKeyOut]:
    keys = await service.list_api_keys(session, access.org_id)
    return [ApiKeyOut.model_validate(k) for k in keys]


@router.post(
    "/api-keys",
    tags=["api-keys"],
    operation_id="create_api_key",
    status_code=status.HTTP_201_CREATED,
)
async def create_api_key(
    body: ApiKeyCreate, access: AdminAccess, session: SessionDep
) -> ApiKeyCreated:
    issued = await service.create_api_key(
        session, access.org_id, body.name, body.role, access.principal.actor_id
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(issued.record).model_dump(), key=issued.key)


@router.delete("/api-keys/{key_id}", tags=["api-keys"], operation_id="revoke_api_key")
async def revoke_api_key(key_id: uuid.UUID, access: AdminAccess, session: SessionDep) -> ApiKeyOut:
    key = await service.revoke_api_key(session, access.org_id, key_id)
    return ApiKeyOut.model_validate(key)
