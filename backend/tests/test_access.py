"""Who may do what: no credential is 401 on every management endpoint, roles are enforced per
endpoint (for users and API keys alike), and another organisation's objects are 404 and never
shown or changed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.api import Org, anonymous, client, new_org
from tests.support.polling import wait_for

#: Endpoints that do not take a person's credential: sign-in (token or browser session), browser
#: sign-out and the gateway's own calls; and
#: operations endpoints (tag "ops": probes, Prometheus metrics) for orchestrators and scrapers.
PUBLIC = {"login", "sign_in", "sign_out", "register_gateway", "gateway_heartbeat", "gateway_config"}


def management_operations(server_url: str) -> list[tuple[str, str, str]]:
    """(method, path, operation id) of every management endpoint in the OpenAPI document."""
    doc = httpx.get(f"{server_url}/openapi.json").json()
    found = []
    for path, operations in doc["paths"].items():
        if "/opamp" in path:
            continue  # agent protocol endpoints authenticate gateways, not people
        for method, op in operations.items():
            if op["operationId"] not in PUBLIC and "ops" not in op.get("tags", []):
                found.append((method.upper(), path, op["operationId"]))
    return found


def fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


def test_every_management_endpoint_needs_a_credential(org: Org) -> None:
    operations = management_operations(org.server.url)
    assert len(operations) >= 23  # the foundation's endpoints, at least
    gw = org.register()
    tokens_before = org.get("/api/v1/registration-tokens").json()
    for method, path, op_id in operations:
        url = fill(path)
        for headers, detail in (
            ({}, "Not authenticated"),
            ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "Not authenticated"),
            ({"Authorization": "Bearer nonsense"}, "Invalid credentials"),
            ({"Authorization": "Bearer fgk_not-a-key"}, "Invalid credentials"),
            ({"Authorization": f"Bearer {gw['opamp_token']}"}, "Invalid credentials"),
        ):
            resp = anonymous(org.server).request(
                method, url, params={"org_id": org.id}, headers=headers, json={}
            )
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json() == {"detail": detail}, (op_id, headers)
            assert resp.headers["www-authenticate"] == "Bearer"
    # Nothing was created or removed by any of those calls.
    assert org.get("/api/v1/registration-tokens").json() == tokens_before
    assert [g["id"] for g in org.get("/api/v1/gateways").json()["items"]] == [gw["id"]]


# -- roles --------------------------------------------------------------------------------------


@dataclass
class Call:
    minimum: str  # viewer | operator | admin
    method: str
    path: str
    ok: int
    body: Any = None
    query: dict[str, Any] | None = None


def calls(org: Org) -> dict[str, Callable[[], Call]]:
    """One builder per endpoint; each builds fresh objects, so destructive calls never collide."""

    def gateway() -> str:
        gid: str = org.register()["id"]
        return gid

    def token_id() -> str:
        resp = org.admin.post(
            "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
        )
        tid: str = resp.json()["id"]
        return tid

    def user_id() -> str:
        resp = org.admin.post(
            "/api/v1/users",
            params={"org_id": org.id},
            json={"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": "password-123"},
        )
        uid: str = resp.json()["id"]
        return uid

    def key_id() -> str:
        resp = org.admin.post("/api/v1/api-keys", params={"org_id": org.id}, json={"name": "k"})
        kid: str = resp.json()["id"]
        return kid

    config = "receivers: {otlp: {}}\nexporters: {debug: {}}\n" + (
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n"
    )
    new_user = {"email": "", "password": "password-123", "role": "viewer"}

    def template(versions: int = 0) -> str:
        resp = org.admin.post(
            "/api/v1/configs", params={"org_id": org.id}, json={"name": uuid.uuid4().hex}
        )
        cid: str = resp.json()["id"]
        for _ in range(versions):
            org.admin.post(
                f"/api/v1/configs/{cid}/versions",
                params={"org_id": org.id},
                json={"config_yaml": config},
            )
        return cid

    def deployment(state: str = "rolling") -> str:
        cid = template(1)
        resp = org.admin.post(
            "/api/v1/deployments",
            params={"org_id": org.id},
            json={
                "config_id": cid,
                "target": {"gateway_ids": [gateway()]},
                "strategy": {"type": "staged", "batches": [1]},
            },
        )
        did: str = resp.json()["id"]
        if state == "paused":
            org.admin.post(f"/api/v1/deployments/{did}/pause", params={"org_id": org.id})
        return did

    def alert_rule() -> str:
        resp = org.admin.post(
            "/api/v1/alert-rules",
            params={"org_id": org.id},
            json={"name": "r", "kind": "token_expiring"},
        )
        rid: str = resp.json()["id"]
        return rid

    hook = {"name": "c", "url": "http://127.0.0.1:9/hook"}

    def channel_id() -> str:
        resp = org.admin.post("/api/v1/notification-channels", params={"org_id": org.id}, json=hook)
        chid: str = resp.json()["id"]
        return chid

    silence = {"selector": "a=b", "ends_at": "2100-01-01T00:00:00Z"}

    def silence_id() -> str:
        resp = org.admin.post("/api/v1/silences", params={"org_id": org.id}, json=silence)
        sid: str = resp.json()["id"]
        return sid

    def create_user() -> Call:
        body = {**new_user, "email": f"n-{uuid.uuid4().hex[:8]}@example.com"}
        return Call("admin", "POST", "/api/v1/users", 201, body)

    return {
        "list_gateways": lambda: Call("viewer", "GET", "/api/v1/gateways", 200),
        "count_gateways": lambda: Call("viewer", "GET", "/api/v1/gateways/count", 200),
        "get_gateway": lambda: Call("viewer", "GET", f"/api/v1/gateways/{gateway()}", 200),
        **{
            f"get_gateway_{part}": (
                lambda part=part: Call("viewer", "GET", f"/api/v1/gateways/{gateway()}/{part}", 200)
            )
            for part in ("health", "version", "config", "metrics", "status")
        },
        "get_gateway_health_history": lambda: Call(
            "viewer", "GET", f"/api/v1/gateways/{gateway()}/health/history", 200
        ),
        "get_fleet_health_history": lambda: Call(
            "viewer", "GET", "/api/v1/fleet/health-history", 200
        ),
        "update_gateway": lambda: Call(
            "operator", "PATCH", f"/api/v1/gateways/{gateway()}", 200, {"name": "renamed"}
        ),
        "deactivate_gateway": lambda: Call(
            "operator", "POST", f"/api/v1/gateways/{gateway()}/deactivate", 200
        ),
        "delete_gateway": lambda: Call("operator", "DELETE", f"/api/v1/gateways/{gateway()}", 204),
        "push_gateway_config": lambda: Call(
            "operator",
            "PUT",
            f"/api/v1/gateways/{gateway()}/remote-config",
            200,
            {"config_yaml": config},
        ),
        "validate_config": lambda: Call(
            "viewer", "POST", "/api/v1/configs/validate", 200, {"config_yaml": config}
        ),
        "create_registration_token": lambda: Call(
            "operator", "POST", "/api/v1/registration-tokens", 201, {"name": "t"}
        ),
        "list_registration_tokens": lambda: Call(
            "operator", "GET", "/api/v1/registration-tokens", 200
        ),
        "revoke_registration_token": lambda: Call(
            "operator", "DELETE", f"/api/v1/registration-tokens/{token_id()}", 200
        ),
        "list_users": lambda: Call("admin", "GET", "/api/v1/users", 200),
        "create_user": create_user,
        "update_user_role": lambda: Call(
            "admin", "PATCH", f"/api/v1/users/{user_id()}", 200, {"role": "operator"}
        ),
        "remove_user": lambda: Call("admin", "DELETE", f"/api/v1/users/{user_id()}", 204),
        "list_api_keys": lambda: Call("admin", "GET", "/api/v1/api-keys", 200),
        "list_audit_entries": lambda: Call("admin", "GET", "/api/v1/audit", 200),
        "create_api_key": lambda: Call("admin", "POST", "/api/v1/api-keys", 201, {"name": "k"}),
        "revoke_api_key": lambda: Call("admin", "DELETE", f"/api/v1/api-keys/{key_id()}", 200),
        "list_configs": lambda: Call("viewer", "GET", "/api/v1/configs", 200),
        "create_config": lambda: Call(
            "operator", "POST", "/api/v1/configs", 201, {"name": uuid.uuid4().hex}
        ),
        "get_config": lambda: Call("viewer", "GET", f"/api/v1/configs/{template()}", 200),
        "update_config": lambda: Call(
            "operator", "PATCH", f"/api/v1/configs/{template()}", 200, {"description": "d"}
        ),
        "delete_config": lambda: Call("operator", "DELETE", f"/api/v1/configs/{template()}", 204),
        "create_config_version": lambda: Call(
            "operator",
            "POST",
            f"/api/v1/configs/{template()}/versions",
            201,
            {"config_yaml": config},
        ),
        "list_config_versions": lambda: Call(
            "viewer", "GET", f"/api/v1/configs/{template(1)}/versions", 200
        ),
        "get_config_version": lambda: Call(
            "viewer", "GET", f"/api/v1/configs/{template(1)}/versions/1", 200
        ),
        "diff_config_versions": lambda: Call(
            "viewer", "GET", f"/api/v1/configs/{template(1)}/diff", 200, query={"from": 1, "to": 1}
        ),
        "create_deployment": lambda: Call(
            "operator",
            "POST",
            "/api/v1/deployments",
            201,
            {"config_id": template(1), "target": {"gateway_ids": [gateway()]}},
        ),
        "list_deployments": lambda: Call("viewer", "GET", "/api/v1/deployments", 200),
        "get_deployment": lambda: Call("viewer", "GET", f"/api/v1/deployments/{deployment()}", 200),
        "list_deployment_gateways": lambda: Call(
            "viewer", "GET", f"/api/v1/deployments/{deployment()}/gateways", 200
        ),
        "list_gateway_deployments": lambda: Call(
            "viewer", "GET", f"/api/v1/gateways/{gateway()}/deployments", 200
        ),
        "pause_deployment": lambda: Call(
            "operator", "POST", f"/api/v1/deployments/{deployment()}/pause", 200
        ),
        "resume_deployment": lambda: Call(
            "operator", "POST", f"/api/v1/deployments/{deployment('paused')}/resume", 200
        ),
        "cancel_deployment": lambda: Call(
            "operator", "POST", f"/api/v1/deployments/{deployment()}/cancel", 200
        ),
        "rollback_deployment": lambda: Call(
            "operator", "POST", f"/api/v1/deployments/{deployment()}/rollback", 201
        ),
        "create_alert_rule": lambda: Call(
            "operator", "POST", "/api/v1/alert-rules", 201, {"name": "r", "kind": "token_expiring"}
        ),
        "list_alert_rules": lambda: Call("viewer", "GET", "/api/v1/alert-rules", 200),
        "get_alert_rule": lambda: Call("viewer", "GET", f"/api/v1/alert-rules/{alert_rule()}", 200),
        "update_alert_rule": lambda: Call(
            "operator", "PATCH", f"/api/v1/alert-rules/{alert_rule()}", 200, {"enabled": False}
        ),
        "delete_alert_rule": lambda: Call(
            "operator", "DELETE", f"/api/v1/alert-rules/{alert_rule()}", 204
        ),
        "create_notification_channel": lambda: Call(
            "operator", "POST", "/api/v1/notification-channels", 201, hook
        ),
        "list_notification_channels": lambda: Call(
            "viewer", "GET", "/api/v1/notification-channels", 200
        ),
        "get_notification_channel": lambda: Call(
            "viewer", "GET", f"/api/v1/notification-channels/{channel_id()}", 200
        ),
        "update_notification_channel": lambda: Call(
            "operator", "PATCH", f"/api/v1/notification-channels/{channel_id()}", 200, {"name": "x"}
        ),
        "delete_notification_channel": lambda: Call(
            "operator", "DELETE", f"/api/v1/notification-channels/{channel_id()}", 204
        ),
        "list_channel_deliveries": lambda: Call(
            "viewer", "GET", f"/api/v1/notification-channels/{channel_id()}/deliveries", 200
        ),
        # Port 9 refuses the connection: answered 200 {"delivered": false, ...}.
        "test_notification_channel": lambda: Call(
            "operator", "POST", f"/api/v1/notification-channels/{channel_id()}/test", 200
        ),
        "create_silence": lambda: Call("operator", "POST", "/api/v1/silences", 201, silence),
        "list_silences": lambda: Call("viewer", "GET", "/api/v1/silences", 200),
        "delete_silence": lambda: Call(
            "operator", "DELETE", f"/api/v1/silences/{silence_id()}", 204
        ),
        "list_alerts": lambda: Call("viewer", "GET", "/api/v1/alerts", 200),
        # No alert exists yet: a viewer gets past the role check to the 404.
        "get_alert": lambda: Call("viewer", "GET", f"/api/v1/alerts/{uuid.uuid4()}", 404),
    }


RANK = {"viewer": 0, "operator": 1, "admin": 2}


def principal(org: Org, kind: str, role: str) -> httpx.Client:
    if kind == "user":
        return org.user(role)
    resp = org.admin.post(
        "/api/v1/api-keys", params={"org_id": org.id}, json={"name": f"{role} key", "role": role}
    )
    assert resp.status_code == 201, resp.text
    return client(org.server, resp.json()["key"])


@pytest.mark.parametrize("kind", ["user", "api_key"])
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_role_matrix(org: Org, kind: str, role: str) -> None:
    builders = calls(org)
    covered = {op for _, _, op in management_operations(org.server.url)}
    # Not scoped to one organisation: one's own password, and a reset that needs the admin role
    # in every org of the user (both covered in test_people).
    unscoped = {"me", "list_orgs", "create_org", "change_password", "reset_user_password"}
    # The event stream never ends, so it is not one call among these (viewer, org-scoped: see
    # test_events_stream).
    unscoped.add("events")
    assert covered - unscoped <= set(builders), "endpoint without a role"
    with principal(org, kind, role) as who:
        for op_id, build in builders.items():
            call = build()
            params = {"org_id": org.id, **(call.query or {})}
            resp = who.request(call.method, call.path, params=params, json=call.body)
            if RANK[role] >= RANK[call.minimum]:
                assert resp.status_code == call.ok, (op_id, resp.text)
            else:
                assert resp.status_code == 403, (op_id, resp.text)
                assert resp.json() == {
                    "detail": f"Requires the {call.minimum} role in this organization"
                }, op_id
        # Only a superuser creates organisations; anyone signed in sees their own.
        created = who.post("/api/v1/orgs", json={"name": f"nope-{uuid.uuid4().hex[:6]}"})
        assert created.status_code == 403, created.text
        orgs = who.get("/api/v1/orgs")
        assert [o["id"] for o in orgs.json()] == [org.id]
        me = who.get("/api/v1/auth/me").json()
        assert me["organizations"] == [{"id": org.id, "name": org.name, "role": role}]
        # A caller in one organisation may leave org_id out.
        assert who.get("/api/v1/gateways").status_code == 200


def test_refused_calls_change_nothing(org: Org) -> None:
    gw = org.register(name="keep me")
    viewer, operator = org.user("viewer"), org.user("operator")
    p = {"org_id": org.id}
    tokens_before = org.get("/api/v1/registration-tokens").json()
    assert (
        viewer.post("/api/v1/registration-tokens", params=p, json={"name": "x"}).status_code == 403
    )
    assert (
        viewer.patch(f"/api/v1/gateways/{gw['id']}", params=p, json={"name": "x"}).status_code
        == 403
    )
    assert viewer.delete(f"/api/v1/gateways/{gw['id']}", params=p).status_code == 403
    assert viewer.post(f"/api/v1/gateways/{gw['id']}/deactivate", params=p).status_code == 403
    users_before = org.get("/api/v1/users").json()
    body = {"email": "sneaky@example.com", "password": "password-123", "role": "admin"}
    assert operator.post("/api/v1/users", params=p, json=body).status_code == 403
    assert operator.post("/api/v1/api-keys", params=p, json={"name": "x"}).status_code == 403
    assert org.get("/api/v1/registration-tokens").json() == tokens_before
    assert org.get("/api/v1/users").json() == users_before
    assert org.get("/api/v1/api-keys").json() == []
    current = org.get(f"/api/v1/gateways/{gw['id']}").json()
    assert (current["name"], current["status"]) == ("keep me", "registered")
    assert org.heartbeat(gw).status_code == 200


# -- isolation ----------------------------------------------------------------------------------


@dataclass
class Estate:
    """One organisation's objects, to be attacked from another organisation."""

    org: Org
    gateway: dict[str, Any]
    token_id: str
    user_id: str
    key: dict[str, Any]

    def secrets(self) -> list[str]:
        return [
            self.gateway["id"],
            self.gateway["instance_id"],
            self.gateway["name"],
            self.token_id,
            self.user_id,
            self.key["id"],
        ]


def estate(org: Org) -> Estate:
    p = {"org_id": org.id}
    gw = org.register(name=f"secret-{uuid.uuid4().hex[:6]}")
    assert org.heartbeat(gw, {"version": "1.2.3"}).status_code == 200
    token = org.admin.post("/api/v1/registration-tokens", params=p, json={"name": "a-token"})
    email = f"a-{uuid.uuid4().hex[:8]}@example.com"
    user = org.admin.post(
        "/api/v1/users", params=p, json={"email": email, "password": "password-123"}
    )
    key = org.admin.post("/api/v1/api-keys", params=p, json={"name": "a-key", "role": "viewer"})
    return Estate(org, gw, token.json()["id"], user.json()["id"], key.json())


def attacks(a: Estate) -> list[tuple[str, str, Any, str]]:
    """(method, path, body, the not-found message when asked within the attacker's own org)."""
    g = f"/api/v1/gateways/{a.gateway['id']}"
    config = "receivers: {otlp: {}}\nexporters: {debug: {}}\n" + (
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n"
    )
    return [
        ("GET", g, None, "Gateway not found"),
        *[
            ("GET", f"{g}/{part}", None, "Gateway not found")
            for part in ("health", "version", "config", "metrics", "status")
        ],
        ("PATCH", g, {"name": "pwned", "labels": {"x": "y"}}, "Gateway not found"),
        ("PUT", f"{g}/remote-config", {"config_yaml": config}, "Gateway not found"),
        ("POST", f"{g}/deactivate", None, "Gateway not found"),
        ("DELETE", g, None, "Gateway not found"),
        (
            "DELETE",
            f"/api/v1/registration-tokens/{a.token_id}",
            None,
            "Registration token not found",
        ),
        ("PATCH", f"/api/v1/users/{a.user_id}", {"role": "admin"}, "User not found"),
        ("DELETE", f"/api/v1/users/{a.user_id}", None, "User not found"),
        ("DELETE", f"/api/v1/api-keys/{a.key['id']}", None, "API key not found"),
    ]


ORG_SCOPED_LISTS = [
    ("GET", "/api/v1/gateways", None),
    ("GET", "/api/v1/registration-tokens", None),
    ("POST", "/api/v1/registration-tokens", {"name": "in a"}),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"email": "x@example.com", "password": "password-123"}),
    ("GET", "/api/v1/api-keys", None),
    ("POST", "/api/v1/api-keys", {"name": "in a"}),
]


def snapshot(org: Org) -> dict[str, Any]:
    return {
        path: org.get(path).json()
        for path in ("/api/v1/registration-tokens", "/api/v1/users", "/api/v1/api-keys")
    }


def assert_estate_intact(a: Estate, before: dict[str, Any]) -> None:
    org = a.org
    assert snapshot(org) == before
    assert a.token_id in {t["id"] for t in before["/api/v1/registration-tokens"]}
    gw = org.get(f"/api/v1/gateways/{a.gateway['id']}")
    assert gw.status_code == 200
    assert (gw.json()["name"], gw.json()["status"], gw.json()["labels"]) == (
        a.gateway["name"],
        "active",
        {},
    )
    assert org.get(f"/api/v1/gateways/{a.gateway['id']}/config").json()["source"] == "base"
    with client(org.server, a.key["key"]) as key_client:
        assert key_client.get("/api/v1/gateways").status_code == 200
    assert org.heartbeat(a.gateway).status_code == 200


@pytest.mark.parametrize("kind", ["user", "api_key"])
def test_another_orgs_objects_are_not_found(org: Org, superuser: httpx.Client, kind: str) -> None:
    a = estate(org)
    before = snapshot(org)
    b_org = new_org(org.server, superuser)
    b_gw = b_org.register()
    with principal(b_org, kind, "admin") as b:
        for method, path, body, not_found in attacks(a):
            # Within its own organisation (org_id left out or given), A's object does not exist.
            for params in ({}, {"org_id": b_org.id}):
                resp = b.request(method, path, params=params, json=body)
                assert (resp.status_code, resp.json()) == (404, {"detail": not_found}), (
                    method,
                    path,
                    params,
                )
            # Naming A's organisation is refused the same way, whatever the endpoint.
            resp = b.request(method, path, params={"org_id": a.org.id}, json=body)
            assert (resp.status_code, resp.json()) == (
                404,
                {"detail": "Organization not found"},
            ), (method, path)
        for method, path, body in ORG_SCOPED_LISTS:
            resp = b.request(method, path, params={"org_id": a.org.id}, json=body)
            assert (resp.status_code, resp.json()) == (
                404,
                {"detail": "Organization not found"},
            ), (method, path)
            assert not any(s in resp.text for s in a.secrets())
        # B's own views never contain A's objects.
        for path in ("/api/v1/gateways", "/api/v1/registration-tokens", "/api/v1/users"):
            resp = b.get(path)
            assert resp.status_code == 200, (path, resp.text)
            assert not any(s in resp.text for s in a.secrets()), path
        listing = b.get("/api/v1/gateways").json()
        assert [g["id"] for g in listing["items"]] == [b_gw["id"]]
        assert listing["summary"]["total"] == 1
        assert [o["id"] for o in b.get("/api/v1/orgs").json()] == [b_org.id]
    assert_estate_intact(a, before)


def test_gateways_of_two_orgs_may_share_an_instance_id(org: Org, superuser: httpx.Client) -> None:
    other = new_org(org.server, superuser)
    mine = org.register("shared-instance")
    theirs = other.register("shared-instance")
    assert mine["id"] != theirs["id"]
    assert other.heartbeat(theirs, {"version": "their-version"}).status_code == 200
    wait_for(  # shown once the heartbeat's presence flush has written it
        lambda: (
            other.get(f"/api/v1/gateways/{theirs['id']}/version").json()["agent_version"]
            == "their-version"
        )
    )
    status = org.get(f"/api/v1/gateways/{mine['id']}/status").json()
    assert status["health"]["last_seen"] is None
    assert status["version"]["agent_version"] is None
    # Each token reaches only its own gateway.
    cfg = anonymous(org.server).get(
        "/api/v1/opamp/config/shared-instance",
        headers={"Authorization": f"Bearer {theirs['opamp_token']}"},
    )
    assert cfg.status_code == 200
    resp = org.admin.put(
        f"/api/v1/gateways/{mine['id']}/remote-config",
        params={"org_id": org.id},
        json={
            "config_yaml": "receivers: {otlp: {}}\nexporters: {debug: {}}\nservice: "
            "{pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n"
        },
    )
    assert resp.status_code == 200, resp.text

    def agent_config(gateway: dict[str, Any]) -> dict[str, Any]:
        resp = anonymous(org.server).get(
            "/api/v1/opamp/config/shared-instance",
            headers={"Authorization": f"Bearer {gateway['opamp_token']}"},
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    assert agent_config(theirs)["source"] == "base"
    mine_cfg = agent_config(mine)
    assert (mine_cfg["source"], mine_cfg["config_version"]) == ("remote", 1)


def test_another_orgs_gateway_token_cannot_act_for_this_orgs_instance(
    org: Org, superuser: httpx.Client
) -> None:
    other = new_org(org.server, superuser)
    mine, theirs = org.register(), other.register()
    for kind in ("heartbeat", "config"):
        resp = anonymous(org.server).request(
            "POST" if kind == "heartbeat" else "GET",
            f"/api/v1/opamp/{kind}/{mine['instance_id']}",
            headers={"Authorization": f"Bearer {theirs['opamp_token']}"},
        )
        assert (resp.status_code, resp.json()) == (
            403,
            {"detail": "Instance ID does not match token"},
        )
    assert org.get(f"/api/v1/gateways/{mine['id']}/health").json()["last_seen"] is None
