"""Every error in the seed's "Error Handling" table, through every way of reaching it, and the
proof that a refused request changed nothing."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.support.api import Org, anonymous, login, new_org
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD

INVALID_REGISTRATION = {"detail": "Invalid or expired registration token"}
INVALID_OPAMP = {"detail": "Invalid OpAMP token"}
MISMATCH = {"detail": "Instance ID does not match token"}
GATEWAY_NOT_FOUND = {"detail": "Gateway not found"}


def agent_call(org: Org, kind: str, instance_id: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    url = f"/api/v1/opamp/{kind}/{instance_id}"
    if kind == "heartbeat":
        return anonymous(org.server).post(url, headers=headers, json={"version": "9.9.9"})
    return anonymous(org.server).get(url, headers=headers)


def forge(org: Org, key: str | None = None, **claims: Any) -> str:
    """A JWT signed with the server's key (or ``key``); claims default to a valid OpAMP token."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "org_id": org.id,
        "type": "opamp_token",
        "exp": now + 3600,
        "iat": now,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key or org.server.secret_key, algorithm="HS256")


def assert_untouched(org: Org, gateway: dict[str, Any]) -> None:
    """The gateway was never seen and reports nothing an agent could have sent."""
    status = org.get(f"/api/v1/gateways/{gateway['id']}/status").json()
    assert status["status"] == "registered"
    assert status["health"]["last_seen"] is None
    assert status["version"]["agent_version"] is None


# -- 1. Invalid registration token: 401 --------------------------------------------------------


def test_registration_refusals(org: Org) -> None:
    used = org.registration_token()
    org.register(token=used)
    other_gw = org.register()
    api_key = org.admin.post(
        "/api/v1/api-keys", params={"org_id": org.id}, json={"name": "k", "role": "admin"}
    ).json()["key"]
    user_token = login(org.server, ADMIN_EMAIL, ADMIN_PASSWORD)
    before = org.get("/api/v1/gateways").json()["summary"]["total"]
    body = {"name": "gw", "instance_id": "refused-gateway"}
    for authorization in (
        None,
        "",
        "Bearer",
        f"Basic {used}",
        f"Bearer {secrets.token_urlsafe(48)}",  # well-formed, unknown
        f"Bearer {used}",  # used up
        f"Bearer {other_gw['opamp_token']}",  # an OpAMP token is not a registration token
        f"Bearer {api_key}",
        f"Bearer {user_token}",
        "Bearer " + "a" * 5000,
    ):
        headers = {"Authorization": authorization} if authorization is not None else {}
        resp = anonymous(org.server).post("/api/v1/gateways", json=body, headers=headers)
        assert resp.status_code == 401, (authorization, resp.text)
        assert resp.json() == INVALID_REGISTRATION
        assert resp.headers["www-authenticate"] == "Bearer"
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == before
    assert org.get("/api/v1/gateways", name="refused").json()["items"] == []


def test_a_token_registers_only_into_its_own_org(org: Org, superuser: httpx.Client) -> None:
    other = new_org(org.server, superuser)
    gw = org.register("same-instance", token=other.registration_token())
    assert gw["org_id"] == other.id
    assert org.get("/api/v1/gateways").json()["items"] == []
    assert [g["id"] for g in other.get("/api/v1/gateways").json()["items"]] == [gw["id"]]


# -- 2. Gateway not found: 404 -----------------------------------------------------------------

MANAGEMENT_CALLS = [
    ("GET", ""),
    ("GET", "/health"),
    ("GET", "/version"),
    ("GET", "/config"),
    ("GET", "/metrics"),
    ("GET", "/status"),
    ("PATCH", ""),
    ("POST", "/deactivate"),
    ("DELETE", ""),
    ("PUT", "/remote-config"),
]
BODIES: dict[str, Any] = {
    "PATCH": {"name": "renamed"},
    "PUT": {"config_yaml": "receivers: {}\n"},
}


@pytest.mark.parametrize(("method", "suffix"), MANAGEMENT_CALLS)
def test_unknown_gateway_is_404(org: Org, method: str, suffix: str) -> None:
    resp = org.admin.request(
        method,
        f"/api/v1/gateways/{uuid.uuid4()}{suffix}",
        params={"org_id": org.id},
        json=BODIES.get(method),
    )
    assert resp.status_code == 404, resp.text
    assert resp.json() == GATEWAY_NOT_FOUND


def test_malformed_gateway_id_is_422_not_500(org: Org) -> None:
    for bad in ("not-a-uuid", "1", "%00", "x" * 300):
        resp = org.get(f"/api/v1/gateways/{bad}/health")
        assert resp.status_code == 422, (bad, resp.text)


# -- 3. Invalid OpAMP token: 401 ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["heartbeat", "config"])
def test_opamp_token_refusals(org: Org, kind: str) -> None:
    gw = org.register()
    claims = {"sub": gw["id"], "org_id": org.id}
    now = int(time.time())
    registration = org.registration_token()
    refused = {
        "no header": None,
        "empty": "",
        "not bearer": f"Token {gw['opamp_token']}",
        "garbage": "Bearer not-a-jwt",
        "another key": "Bearer " + forge(org, key=secrets.token_urlsafe(48), **claims),
        "user access token": "Bearer " + login(org.server, ADMIN_EMAIL, ADMIN_PASSWORD),
        "access type": "Bearer " + forge(org, type="access", **claims),
        "no type": "Bearer " + forge(org, type=None, **claims),
        "expired": "Bearer " + forge(org, exp=now - 10, iat=now - 100, **claims),
        "no exp": "Bearer " + forge(org, exp=None, **claims),
        "other org": "Bearer " + forge(org, sub=gw["id"], org_id=str(uuid.uuid4())),
        "no org": "Bearer " + forge(org, sub=gw["id"], org_id=None),
        "unknown gateway": "Bearer " + forge(org),
        "sub not a uuid": "Bearer " + forge(org, sub="gateway-1", org_id=org.id),
        # Signed with the right key and naming the right gateway, but not the token issued
        # to it: only the digest of the current token is accepted.
        "not the issued token": "Bearer " + forge(org, jti="x", **claims),
        "registration token": f"Bearer {registration}",
        "alg none": "Bearer "
        + jwt.encode(
            {"sub": gw["id"], "org_id": org.id, "type": "opamp_token", "exp": now + 60, "iat": now},
            None,
            algorithm="none",
        ),
        "tampered": "Bearer "
        + gw["opamp_token"][:-2]
        + ("AA" if gw["opamp_token"][-2:] != "AA" else "BB"),
    }
    for label, authorization in refused.items():
        resp = agent_call(org, kind, gw["instance_id"], authorization)
        assert resp.status_code == 401, (label, resp.text)
        assert resp.json() == INVALID_OPAMP, label
        assert resp.headers["www-authenticate"] == "Bearer"
    assert_untouched(org, gw)
    ok = agent_call(org, kind, gw["instance_id"], f"Bearer {gw['opamp_token']}")
    assert ok.status_code == 200, ok.text


def test_opamp_token_is_not_a_management_credential(org: Org) -> None:
    gw = org.register()
    resp = anonymous(org.server).get(
        "/api/v1/gateways",
        params={"org_id": org.id},
        headers={"Authorization": f"Bearer {gw['opamp_token']}"},
    )
    assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid credentials"})


def test_deactivated_and_deleted_gateways_tokens_are_refused(org: Org) -> None:
    deactivated, deleted = org.register(), org.register()
    for gw in (deactivated, deleted):
        assert org.heartbeat(gw).status_code == 200
    resp = org.admin.post(
        f"/api/v1/gateways/{deactivated['id']}/deactivate", params={"org_id": org.id}
    )
    assert resp.status_code == 200, resp.text
    resp = org.admin.delete(f"/api/v1/gateways/{deleted['id']}", params={"org_id": org.id})
    assert resp.status_code == 204, resp.text
    for gw in (deactivated, deleted):
        for kind in ("heartbeat", "config"):
            resp = agent_call(org, kind, gw["instance_id"], f"Bearer {gw['opamp_token']}")
            assert (resp.status_code, resp.json()) == (401, INVALID_OPAMP), kind
    assert org.get(f"/api/v1/gateways/{deactivated['id']}").json()["status"] == "inactive"
    gone = org.get(f"/api/v1/gateways/{deleted['id']}")
    assert (gone.status_code, gone.json()) == (404, GATEWAY_NOT_FOUND)


# -- 4. Instance ID mismatch: 403 --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["heartbeat", "config"])
def test_instance_id_must_match_the_token(org: Org, kind: str) -> None:
    mine, theirs = org.register(), org.register()
    for instance_id in (
        theirs["instance_id"],  # another gateway of the same org
        "no-such-gateway",
        mine["instance_id"].upper(),
        mine["instance_id"] + " ",
        "a" * 10_240,
        "%E2%98%83%20snow",
        "%25",
    ):
        resp = agent_call(org, kind, instance_id, f"Bearer {mine['opamp_token']}")
        assert resp.status_code == 403, (instance_id[:40], resp.text)
        assert resp.json() == MISMATCH
    assert_untouched(org, mine)
    assert_untouched(org, theirs)


# -- 5. Configuration not found: the base configuration is the fallback ------------------------


def test_a_gateway_without_a_pushed_config_gets_the_base_config(org: Org) -> None:
    gw = org.register()
    agent = agent_call(org, "config", gw["instance_id"], f"Bearer {gw['opamp_token']}")
    assert agent.status_code == 200, agent.text
    body = agent.json()
    assert body["source"] == "base"
    assert (body["config_version"], body["deployment_id"]) == (None, None)
    for section in ("receivers:", "exporters:", "service:", "pipelines:"):
        assert section in body["config_yaml"]
    managed = org.get(f"/api/v1/gateways/{gw['id']}/config").json()
    assert managed["config_yaml"] == body["config_yaml"]
    assert managed["config_hash"] == body["config_hash"]
    assert managed["source"] == "base"
