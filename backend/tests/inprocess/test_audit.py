"""The audit log, in process on both databases: every route that changes state writes exactly
one entry in the transaction of the change (the list of routes is read from the OpenAPI
document, so a new route without an entry here fails), failures leave a failure entry and no
change, and an organisation's admins read only their own organisation's entries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from flowgate import telemetry
from flowgate.audit.models import AuditEntry
from flowgate.core.security import access_token
from flowgate.gateways.models import Gateway
from flowgate.orgs import service as orgs
from flowgate.orgs.models import Role, User
from tests.inprocess.conftest import Api

GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)
#: POSTs that change nothing a person decided: agent heartbeats and the dry-run validation.
NOT_AUDITED = {"gateway_heartbeat", "validate_config"}


async def _entries(api: Api, after: int = 0) -> list[AuditEntry]:
    async with api.http._transport.app.state.unit_of_work() as uow:  # type: ignore[attr-defined]
        rows = await uow.session.scalars(
            select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id)
        )
        return list(rows)


async def _last_id(api: Api) -> int:
    async with api.http._transport.app.state.unit_of_work() as uow:  # type: ignore[attr-defined]
        return int(await uow.session.scalar(select(func.max(AuditEntry.id))) or 0)


async def _scalar(api: Api, query: Any) -> Any:
    async with api.http._transport.app.state.unit_of_work() as uow:  # type: ignore[attr-defined]
        return await uow.session.scalar(query)


async def _person(api: Api, role: Role | None, superuser: bool = False) -> tuple[User, str]:
    """A user (a member with ``role`` of the test's org, or of none) and an access token."""
    async with api.http._transport.app.state.unit_of_work() as uow:  # type: ignore[attr-defined]
        user = await orgs.create_user(
            uow.session,
            f"p-{uuid.uuid4().hex[:8]}@example.com",
            "password-123",
            org_id=uuid.UUID(api.org_id) if role else None,
            role=role or Role.viewer,
            is_superuser=superuser,
        )
    app = api.http._transport.app  # type: ignore[attr-defined]
    return user, access_token(user.id, 60, app.state.settings.signing_key)


def _operations(api: Api) -> dict[str, tuple[str, str, str | None]]:
    """operation id -> (method, path, x-audit-action) of every route that changes state."""
    doc = api.http._transport.app.openapi()  # type: ignore[attr-defined]
    return {
        op["operationId"]: (method.upper(), path, op.get("x-audit-action"))
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method.upper() not in ("GET", "HEAD", "OPTIONS")
    }


@dataclass
class Call:
    """One call of an operation and what its audit entry must say."""

    operation: str
    action: str
    object_type: str | None
    send: Callable[[dict[str, Any]], Awaitable[httpx.Response]]
    #: The object's id: from the state the calls built (or the answer, for creations).
    object_id: Callable[[dict[str, Any], httpx.Response], Any]
    actor: Callable[[dict[str, Any]], tuple[str, Any]]
    org: bool = True


async def test_every_mutating_route_writes_exactly_one_entry(api: Api) -> None:
    operations = _operations(api)
    me = (await api.call("GET", "/api/v1/auth/me")).json()
    admin = ("user", uuid.UUID(me["id"]))
    su, su_token = await _person(api, Role.admin, superuser=True)
    s: dict[str, Any] = {}
    org_id = api.org_id

    def made(_: dict[str, Any], r: httpx.Response) -> Any:
        return r.json()["id"]

    def key(name: str) -> Callable[[dict[str, Any], httpx.Response], Any]:
        return lambda st, _: st[name]

    def by_admin(_: dict[str, Any]) -> tuple[str, Any]:
        return admin

    async def register(st: dict[str, Any]) -> httpx.Response:
        r = await api.http.post(
            "/api/v1/gateways",
            json={"name": "gw", "instance_id": f"audit-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {st['token']}"},
        )
        st["gateway"] = r.json()["id"]
        return r

    async def post(path: str, body: Any, name: str | None = None) -> httpx.Response:
        r = await api.call("POST", path, json=body)
        if name:
            s[name] = r.json()["id"]
        return r

    async def login(st: dict[str, Any]) -> httpx.Response:
        return await api.http.post(
            "/api/v1/auth/login",
            json={"email": st["member_email"], "password": "password-456"},
            headers={"Authorization": ""},
        )

    async def token_create(st: dict[str, Any]) -> httpx.Response:
        r = await post("/api/v1/registration-tokens", {"name": "t", "max_uses": 5}, "token_id")
        st["token"] = r.json()["token"]
        return r

    async def member_create(st: dict[str, Any]) -> httpx.Response:
        st["member_email"] = f"m-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": st["member_email"], "password": "password-123", "role": "viewer"}
        return await post("/api/v1/users", body, "member")

    async def change_password(st: dict[str, Any]) -> httpx.Response:
        token = (await login_with(st)).json()["access_token"]
        return await api.http.post(
            "/api/v1/auth/password",
            json={"current_password": "x" * 12, "new_password": "password-456"},
            headers={"Authorization": f"Bearer {token}"},
        )

    async def login_with(st: dict[str, Any]) -> httpx.Response:
        # Not through the app: the sign-in needed to change a password is not the call audited.
        app = api.http._transport.app  # type: ignore[attr-defined]
        async with app.state.unit_of_work() as uow:
            user = await orgs.get_user_by_email(uow.session, st["member_email"])
        tok = access_token(user.id, 60, app.state.settings.signing_key, user.credentials_version)
        return httpx.Response(200, json={"access_token": tok})

    def member(st: dict[str, Any]) -> tuple[str, Any]:
        return ("user", uuid.UUID(st["member"]))

    def token_actor(st: dict[str, Any]) -> tuple[str, Any]:
        return ("registration_token", uuid.UUID(st["token_id"]))

    def sign_in_actor(st: dict[str, Any]) -> tuple[str, Any]:
        return member(st)

    calls = [
        Call(
            "create_registration_token",
            "registration_token.create",
            "registration_token",
            token_create,
            made,
            by_admin,
        ),
        Call("register_gateway", "gateway.register", "gateway", register, made, token_actor),
        Call(
            "update_gateway",
            "gateway.update",
            "gateway",
            lambda st: api.call("PATCH", f"/api/v1/gateways/{st['gateway']}", json={"name": "n"}),
            key("gateway"),
            by_admin,
        ),
        Call(
            "create_config",
            "config.create",
            "config",
            lambda st: post("/api/v1/configs", {"name": "edge"}, "config"),
            made,
            by_admin,
        ),
        Call(
            "update_config",
            "config.update",
            "config",
            lambda st: api.call(
                "PATCH", f"/api/v1/configs/{st['config']}", json={"description": "d"}
            ),
            key("config"),
            by_admin,
        ),
        Call(
            "create_config_version",
            "config.version.create",
            "config.version",
            lambda st: post(f"/api/v1/configs/{st['config']}/versions", {"config_yaml": GOOD}),
            made,
            by_admin,
        ),
        Call(
            "create_deployment",
            "deployment.create",
            "deployment",
            lambda st: post(
                "/api/v1/deployments",
                {
                    "config_id": st["config"],
                    "target": {"gateway_ids": [st["gateway"]]},
                    "strategy": {"type": "staged", "batches": [1]},
                },
                "deployment",
            ),
            made,
            by_admin,
        ),
        Call(
            "pause_deployment",
            "deployment.pause",
            "deployment",
            lambda st: post(f"/api/v1/deployments/{st['deployment']}/pause", None),
            key("deployment"),
            by_admin,
        ),
        Call(
            "resume_deployment",
            "deployment.resume",
            "deployment",
            lambda st: post(f"/api/v1/deployments/{st['deployment']}/resume", None),
            key("deployment"),
            by_admin,
        ),
        Call(
            "cancel_deployment",
            "deployment.cancel",
            "deployment",
            lambda st: post(f"/api/v1/deployments/{st['deployment']}/cancel", None),
            key("deployment"),
            by_admin,
        ),
        Call(
            "rollback_deployment",
            "deployment.rollback",
            "deployment",
            lambda st: post(f"/api/v1/deployments/{st['deployment']}/rollback", None),
            key("deployment"),
            by_admin,
        ),
        Call(
            "push_gateway_config",
            "gateway.config.push",
            "gateway",
            lambda st: api.call(
                "PUT", f"/api/v1/gateways/{st['gateway']}/remote-config", json={"config_yaml": GOOD}
            ),
            key("gateway"),
            by_admin,
        ),
        Call("create_user", "user.create", "user", member_create, made, by_admin),
        Call(
            "update_user_role",
            "user.role.update",
            "user",
            lambda st: api.call("PATCH", f"/api/v1/users/{st['member']}", json={"role": "admin"}),
            key("member"),
            by_admin,
        ),
        Call(
            "reset_user_password",
            "user.password.reset",
            "user",
            lambda st: post(f"/api/v1/users/{st['member']}/password", {"new_password": "x" * 12}),
            key("member"),
            by_admin,
        ),
        Call(
            "change_password",
            "auth.change_password",
            "user",
            change_password,
            key("member"),
            member,
            org=False,
        ),
        Call("login", "auth.login", "user", login, key("member"), sign_in_actor, org=False),
        Call(
            "sign_in",
            "auth.sign_in",
            "user",
            lambda st: api.http.post(
                "/api/v1/auth/session",
                json={"email": st["member_email"], "password": "password-456"},
                headers={"Authorization": ""},
            ),
            key("member"),
            sign_in_actor,
            org=False,
        ),
        Call(
            "sign_out",
            "auth.sign_out",
            None,
            lambda st: api.http.delete("/api/v1/auth/session", headers={"Authorization": ""}),
            lambda st, r: None,
            lambda st: ("anonymous", None),
            org=False,
        ),
        Call(
            "remove_user",
            "user.remove",
            "user",
            lambda st: api.call("DELETE", f"/api/v1/users/{st['member']}"),
            key("member"),
            by_admin,
        ),
        Call(
            "create_api_key",
            "api_key.create",
            "api_key",
            lambda st: post("/api/v1/api-keys", {"name": "k"}, "key"),
            made,
            by_admin,
        ),
        Call(
            "revoke_api_key",
            "api_key.revoke",
            "api_key",
            lambda st: api.call("DELETE", f"/api/v1/api-keys/{st['key']}"),
            key("key"),
            by_admin,
        ),
        Call(
            "revoke_registration_token",
            "registration_token.revoke",
            "registration_token",
            lambda st: api.call("DELETE", f"/api/v1/registration-tokens/{st['token_id']}"),
            key("token_id"),
            by_admin,
        ),
        Call(
            "deactivate_gateway",
            "gateway.deactivate",
            "gateway",
            lambda st: post(f"/api/v1/gateways/{st['gateway']}/deactivate", None),
            key("gateway"),
            by_admin,
        ),
        Call(
            "delete_gateway",
            "gateway.delete",
            "gateway",
            lambda st: api.call("DELETE", f"/api/v1/gateways/{st['gateway']}"),
            key("gateway"),
            by_admin,
        ),
        Call(
            "delete_config",
            "config.delete",
            "config",
            lambda st: _delete_spare(api, st),
            key("spare"),
            by_admin,
        ),
        Call(
            "create_notification_channel",
            "notification_channel.create",
            "notification_channel",
            # Nothing listens there: the test delivery below fails fast, as a result.
            lambda st: post(
                "/api/v1/notification-channels",
                {"name": "hook", "url": "http://127.0.0.1:9/hook"},
                "channel",
            ),
            made,
            by_admin,
        ),
        Call(
            "update_notification_channel",
            "notification_channel.update",
            "notification_channel",
            lambda st: api.call(
                "PATCH", f"/api/v1/notification-channels/{st['channel']}", json={"name": "h2"}
            ),
            key("channel"),
            by_admin,
        ),
        Call(
            "test_notification_channel",
            "notification_channel.test",
            "notification_channel",
            lambda st: post(f"/api/v1/notification-channels/{st['channel']}/test", {}),
            key("channel"),
            by_admin,
        ),
        Call(
            "create_alert_rule",
            "alert_rule.create",
            "alert_rule",
            lambda st: post(
                "/api/v1/alert-rules",
                {
                    "name": "expiring",
                    "kind": "token_expiring",
                    "hours": 24,
                    "channel_ids": [st["channel"]],
                },
                "rule",
            ),
            made,
            by_admin,
        ),
        Call(
            "update_alert_rule",
            "alert_rule.update",
            "alert_rule",
            lambda st: api.call(
                "PATCH", f"/api/v1/alert-rules/{st['rule']}", json={"enabled": False}
            ),
            key("rule"),
            by_admin,
        ),
        Call(
            "create_silence",
            "silence.create",
            "silence",
            lambda st: post(
                "/api/v1/silences",
                {"rule_id": st["rule"], "ends_at": "2100-01-01T00:00:00Z"},
                "silence",
            ),
            made,
            by_admin,
        ),
        Call(
            "delete_silence",
            "silence.delete",
            "silence",
            lambda st: api.call("DELETE", f"/api/v1/silences/{st['silence']}"),
            key("silence"),
            by_admin,
        ),
        Call(
            "delete_alert_rule",
            "alert_rule.delete",
            "alert_rule",
            lambda st: api.call("DELETE", f"/api/v1/alert-rules/{st['rule']}"),
            key("rule"),
            by_admin,
        ),
        Call(
            "delete_notification_channel",
            "notification_channel.delete",
            "notification_channel",
            lambda st: api.call("DELETE", f"/api/v1/notification-channels/{st['channel']}"),
            key("channel"),
            by_admin,
        ),
        Call(
            "create_org",
            "org.create",
            "org",
            lambda st: api.http.post(
                "/api/v1/orgs",
                json={"name": f"o-{uuid.uuid4().hex[:8]}"},
                headers={"Authorization": f"Bearer {su_token}"},
            ),
            made,
            lambda st: ("user", su.id),
            org=False,
        ),
    ]
    audited = {op for op, (_, _, action) in operations.items() if action}
    assert {op for op, (_, _, action) in operations.items() if not action} == NOT_AUDITED
    assert {c.operation for c in calls} == audited, "every audited route is called once here"
    for call in calls:
        _, _, action = operations[call.operation]
        assert action == call.action, call.operation
        before = await _last_id(api)
        resp = await call.send(s)
        assert resp.status_code < 300, (call.operation, resp.status_code, resp.text)
        rows = await _entries(api, before)
        assert len(rows) == 1, (call.operation, [r.action for r in rows])
        [row] = rows
        expected_id = call.object_id(s, resp)
        assert (row.action, row.result, row.status_code) == (
            call.action,
            "success",
            resp.status_code,
        ), call.operation
        assert (row.object_type, row.object_id) == (
            call.object_type,
            str(expected_id) if expected_id is not None else None,
        ), call.operation
        assert (row.actor_kind, row.actor_id) == call.actor(s), call.operation
        if call.operation == "create_org":
            assert row.org_id == uuid.UUID(resp.json()["id"])
        elif call.org:
            assert row.org_id == uuid.UUID(org_id), call.operation
        assert row.address == "127.0.0.1"
        assert "password" not in str(row.detail or "")


async def _delete_spare(api: Api, st: dict[str, Any]) -> httpx.Response:
    # Made outside the app, so the one audited call is the DELETE.
    from flowgate.configs import templates

    app = api.http._transport.app  # type: ignore[attr-defined]
    async with app.state.unit_of_work() as uow:
        template = await templates.create(uow.session, uuid.UUID(api.org_id), "spare", None)
        st["spare"] = str(template.id)
    return await api.call("DELETE", f"/api/v1/configs/{st['spare']}")


async def test_failed_and_denied_mutations_leave_an_entry_and_no_change(api: Api) -> None:
    token = (await api.call("POST", "/api/v1/registration-tokens", json={"name": "t"})).json()
    gw = (
        await api.http.post(
            "/api/v1/gateways",
            json={"name": "gw", "instance_id": f"f-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {token['token']}"},
        )
    ).json()
    viewer, viewer_token = await _person(api, Role.viewer)
    before = await _last_id(api)
    denied = await api.http.post(
        f"/api/v1/gateways/{gw['id']}/deactivate",
        headers={"Authorization": f"Bearer {viewer_token}"},
    )
    assert denied.status_code == 403
    [row] = await _entries(api, before)
    assert (row.action, row.result, row.status_code) == ("gateway.deactivate", "denied", 403)
    assert (row.actor_kind, row.actor_id, row.org_id) == ("user", viewer.id, uuid.UUID(api.org_id))
    assert (row.object_type, row.object_id) == ("gateway", gw["id"])
    status = await _scalar(api, select(Gateway.status).where(Gateway.id == uuid.UUID(gw["id"])))
    assert status.value == "registered"

    # A request that wrote before it failed: the write is rolled back, the entry stays.
    body = {"email": f"dup-{uuid.uuid4().hex[:6]}@example.com", "password": "password-123"}
    assert (await api.call("POST", "/api/v1/users", json=body)).status_code == 201
    users = await _scalar(api, select(func.count()).select_from(User))
    before = await _last_id(api)
    dup = await api.call("POST", "/api/v1/users", json={**body, "email": body["email"].upper()})
    assert dup.status_code == 409, dup.text
    [row] = await _entries(api, before)
    assert (row.action, row.result, row.status_code) == ("user.create", "failed", 409)
    assert row.org_id == uuid.UUID(api.org_id)
    assert await _scalar(api, select(func.count()).select_from(User)) == users

    # Bad input is a failure entry too, and so is another organisation's object (404).
    before = await _last_id(api)
    bad = await api.call("PATCH", f"/api/v1/gateways/{gw['id']}", json={"name": ""})
    missing = await api.call("POST", f"/api/v1/gateways/{uuid.uuid4()}/deactivate")
    assert (bad.status_code, missing.status_code) == (422, 404)
    rows = await _entries(api, before)
    assert [(r.action, r.result, r.status_code) for r in rows] == [
        ("gateway.update", "failed", 422),
        ("gateway.deactivate", "failed", 404),
    ]


async def test_authentication_failures_are_counted_and_sampled(api: Api) -> None:
    api.http._transport.app.state.audit.auth_failures._seen.clear()  # type: ignore[attr-defined]
    counted = telemetry.AUTH_FAILURES.get("registration_token")
    before = await _last_id(api)
    secret = "fgr_" + uuid.uuid4().hex
    for _ in range(3):
        resp = await api.http.post(
            "/api/v1/gateways",
            json={"name": "gw", "instance_id": "x"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert resp.status_code == 401
    assert telemetry.AUTH_FAILURES.get("registration_token") == counted + 3
    rows = await _entries(api, before)
    assert [(r.action, r.result, r.status_code, r.actor_kind) for r in rows] == [
        ("gateway.register", "denied", 401, "anonymous")
    ]
    assert rows[0].detail == {"sampled": True, "unrecorded_before": 0}
    assert secret not in repr([vars(r) for r in rows])


async def test_admins_read_only_their_organisation(api: Api) -> None:
    await api.call("POST", "/api/v1/configs", json={"name": "mine"})
    # Another organisation, with its own admin and its own entry.
    app = api.http._transport.app  # type: ignore[attr-defined]
    async with app.state.unit_of_work() as uow:
        other = await orgs.create_org(uow.session, f"other-{uuid.uuid4().hex[:8]}")
        stranger = await orgs.create_user(
            uow.session,
            f"s-{uuid.uuid4().hex[:8]}@example.com",
            "password-123",
            org_id=other.id,
            role=Role.admin,
        )
    stranger_token = access_token(stranger.id, 60, app.state.settings.signing_key)
    theirs = {"Authorization": f"Bearer {stranger_token}"}
    made = await api.http.post("/api/v1/configs", json={"name": "theirs"}, headers=theirs)
    assert made.status_code == 201

    mine = (await api.call("GET", "/api/v1/audit")).json()["items"]
    assert [e["action"] for e in mine] == ["config.create"]
    assert {e["org_id"] for e in mine} == {api.org_id}
    other_view = (await api.http.get("/api/v1/audit", headers=theirs)).json()["items"]
    assert [(e["action"], e["object_id"]) for e in other_view] == [
        ("config.create", made.json()["id"])
    ]
    # Asking for the other organisation: not found, as for any of its objects.
    peek = await api.call("GET", "/api/v1/audit", params={"org_id": str(other.id)})
    assert peek.status_code == 404
    for role in (Role.viewer, Role.operator):
        _, token = await _person(api, role)
        resp = await api.http.get(
            "/api/v1/audit",
            params={"org_id": api.org_id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 403, role


async def test_filters_and_keyset_pages(api: Api) -> None:
    ids = [
        (await api.call("POST", "/api/v1/configs", json={"name": f"c{i}"})).json()["id"]
        for i in range(5)
    ]
    await api.call("PATCH", f"/api/v1/configs/{ids[0]}", json={"description": "x"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "action": "config.", **({"cursor": cursor} if cursor else {})}
        page = (await api.call("GET", "/api/v1/audit", params=params)).json()
        seen += [e["action"] + ":" + e["object_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"config.update:{ids[0]}"] + [f"config.create:{i}" for i in reversed(ids)]
    one = await api.call("GET", "/api/v1/audit", params={"object": f"config:{ids[0]}"})
    assert [e["action"] for e in one.json()["items"]] == ["config.update", "config.create"]
    me = (await api.call("GET", "/api/v1/auth/me")).json()
    by_actor = await api.call("GET", "/api/v1/audit", params={"actor": me["id"]})
    assert len(by_actor.json()["items"]) == 6
    later = await api.call("GET", "/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["items"] == []
    naive = await api.call("GET", "/api/v1/audit", params={"since": "2020-01-01T00:00:00"})
    bad_cursor = await api.call("GET", "/api/v1/audit", params={"cursor": "abc"})
    assert (naive.status_code, bad_cursor.status_code) == (400, 400)


async def test_the_table_is_append_only(api: Api) -> None:
    await api.call("POST", "/api/v1/configs", json={"name": "c"})
    from sqlalchemy import text

    app = api.http._transport.app  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="append-only"):
        async with app.state.unit_of_work() as uow:
            await uow.session.execute(text("UPDATE audit_log SET action = 'x'"))


async def test_retention_prunes_once_across_replicas(api: Api) -> None:
    from datetime import timedelta

    from flowgate.audit.retention import AuditPruner
    from flowgate.core.db import utcnow

    app = api.http._transport.app  # type: ignore[attr-defined]
    old, recent = utcnow() - timedelta(days=40), utcnow() - timedelta(days=5)
    async with app.state.unit_of_work() as uow:
        for at in (old, old, recent):
            uow.session.add(
                AuditEntry(at=at, actor_kind="cli", action="x.y", result="success", status_code=200)
            )
    one = AuditPruner(app.state.unit_of_work, retention_days=30, interval=3600)
    two = AuditPruner(app.state.unit_of_work, retention_days=30, interval=3600)
    assert await one.prune() == 2
    # Pruned within the interval: the other replica skips, and so does the first.
    assert await two.prune() is None
    assert await one.prune() is None
    left = await _scalar(
        api, select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "x.y")
    )
    assert left == 1
    keep_all = AuditPruner(app.state.unit_of_work, retention_days=0, interval=3600)
    assert await keep_all.prune() is None
