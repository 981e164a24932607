"""Resolving a user's token: one query for the user and all their memberships, and the same
answers as before for the cases that refuse (inactive user, an older password's token) or
see no organisation (a user who belongs to none)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import event, update

from flowgate.core.security import access_token
from flowgate.orgs import service as orgs
from flowgate.orgs.models import Role, User
from tests.inprocess.conftest import Api, InProcess


async def _user(api: Api, inprocess: InProcess, *, orgs_roles: list[tuple[str, Role]]) -> str:
    """A new user with the given memberships; returns an access token for them."""
    maker = inprocess.app.state.unit_of_work
    async with maker() as uow:
        user = await orgs.create_user(
            uow.session, f"u-{uuid.uuid4().hex[:8]}@example.com", "pw-12345678"
        )
        for org_id, role in orgs_roles:
            await orgs.add_membership(uow.session, uuid.UUID(org_id), user.id, role)
        await uow.commit()
    return access_token(user.id, 60, inprocess.settings.signing_key)


async def _me(api: Api, token: str) -> httpx.Response:
    return await api.http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_request_loads_its_user_and_memberships_in_one_query(
    api: Api, inprocess: InProcess
) -> None:
    async with inprocess.app.state.unit_of_work() as uow:
        second = await orgs.create_org(uow.session, f"o-{uuid.uuid4().hex[:8]}")
        await uow.commit()
    memberships = [(api.org_id, Role.operator), (str(second.id), Role.viewer)]
    token = await _user(api, inprocess, orgs_roles=memberships)

    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    sync_engine = inprocess.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        reply = await _me(api, token)
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
    assert reply.status_code == 200, reply.text
    roles = {o["id"]: o["role"] for o in reply.json()["organizations"]}
    assert roles == {org_id: role.value for org_id, role in memberships}
    # The request's first statement is the principal's lookup: users joined to memberships,
    # not the user first and their memberships in a second round trip.
    queries = [s for s in statements if s.startswith("SELECT")]
    assert "FROM users LEFT OUTER JOIN memberships" in queries[0], queries


async def test_a_user_without_memberships_is_signed_in_with_no_organisation(
    api: Api, inprocess: InProcess
) -> None:
    token = await _user(api, inprocess, orgs_roles=[])
    reply = await _me(api, token)
    assert reply.status_code == 200, reply.text
    assert reply.json()["organizations"] == []
    listed = await api.http.get("/api/v1/gateways", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 400  # no organisation to pick: org_id is required


async def test_inactive_users_and_old_tokens_are_refused(api: Api, inprocess: InProcess) -> None:
    token = await _user(api, inprocess, orgs_roles=[(api.org_id, Role.viewer)])
    assert (await _me(api, token)).status_code == 200
    user_id = uuid.UUID(str(_subject(token, inprocess)))
    maker = inprocess.app.state.unit_of_work
    async with maker() as uow:
        await uow.session.execute(
            update(User).where(User.id == user_id).values(credentials_version=1)
        )
        await uow.commit()
    assert (await _me(api, token)).status_code == 401  # issued before the password changed
    fresh = access_token(user_id, 60, inprocess.settings.signing_key, 1)
    assert (await _me(api, fresh)).status_code == 200
    async with maker() as uow:
        await uow.session.execute(update(User).where(User.id == user_id).values(is_active=False))
        await uow.commit()
    assert (await _me(api, fresh)).status_code == 401
    unknown = access_token(uuid.uuid4(), 60, inprocess.settings.signing_key)
    assert (await _me(api, unknown)).status_code == 401


def _subject(token: str, inprocess: InProcess) -> str:
    from flowgate.core.security import ACCESS_TOKEN_TYPE, decode_jwt

    claims = decode_jwt(token, inprocess.settings.signing_key, ACCESS_TOKEN_TYPE)
    assert claims is not None
    return str(claims["sub"])
