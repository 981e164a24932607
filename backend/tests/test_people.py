"""People and machine credentials: sign-in, users and roles in an organisation, API keys."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import httpx
import jwt

from tests.support.api import Org, anonymous, client, login, new_org
from tests.support.db import fetch_row, query


def new_user(org: Org, role: str = "viewer") -> tuple[str, str, str]:
    email = f"u-{uuid.uuid4().hex[:8]}@Example.com"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email, "password": password, "role": role},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], email, password


# -- users -------------------------------------------------------------------------------------


def test_user_lifecycle(org: Org) -> None:
    user_id, email, password = new_user(org, "viewer")
    member = {u["id"]: u for u in org.get("/api/v1/users").json()}[user_id]
    assert (member["email"], member["role"], member["is_active"]) == (email.lower(), "viewer", True)
    (stored,) = fetch_row(org.server, "users", user_id, "password_hash")
    assert password not in stored and stored.startswith("$argon2")
    # Sign-in is case-insensitive on the email.
    token = login(org.server, email.upper(), password)
    with client(org.server, token) as person:
        me = person.get("/api/v1/auth/me").json()
        assert (me["id"], me["email"], me["is_superuser"]) == (user_id, email.lower(), False)
        assert me["organizations"] == [{"id": org.id, "name": org.name, "role": "viewer"}]
        assert person.post("/api/v1/registration-tokens", json={"name": "t"}).status_code == 403
        # Promotion takes effect on the next request.
        resp = org.admin.patch(
            f"/api/v1/users/{user_id}", params={"org_id": org.id}, json={"role": "operator"}
        )
        assert resp.status_code == 200 and resp.json()["role"] == "operator"
        assert person.post("/api/v1/registration-tokens", json={"name": "t"}).status_code == 201
        # Removal from the organisation ends access to it.
        resp = org.admin.delete(f"/api/v1/users/{user_id}", params={"org_id": org.id})
        assert resp.status_code == 204
        assert user_id not in {u["id"] for u in org.get("/api/v1/users").json()}
        refused = person.get("/api/v1/gateways", params={"org_id": org.id})
        assert (refused.status_code, refused.json()) == (
            404,
            {"detail": "Organization not found"},
        )
        assert person.get("/api/v1/orgs").json() == []


def test_duplicate_email_is_409(org: Org) -> None:
    _, email, _ = new_user(org)
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email.upper(), "password": "password-123"},
    )
    assert (resp.status_code, resp.json()) == (
        409,
        {"detail": "A user with this email already exists"},
    )


def test_an_org_keeps_at_least_one_admin(org: Org, superuser: httpx.Client) -> None:
    # A fresh org whose only admin is a regular user (the superuser leaves it).
    fresh = new_org(org.server, superuser)
    admin_id, email, password = new_user(fresh, "admin")
    me = superuser.get("/api/v1/auth/me").json()
    resp = superuser.delete(f"/api/v1/users/{me['id']}", params={"org_id": fresh.id})
    assert resp.status_code == 204, resp.text
    with client(fresh.server, login(fresh.server, email, password)) as admin:
        for method, body in (("PATCH", {"role": "viewer"}), ("DELETE", None)):
            resp = admin.request(method, f"/api/v1/users/{admin_id}", json=body)
            assert (resp.status_code, resp.json()) == (
                409,
                {"detail": "An organization must keep at least one admin"},
            )
        assert [u["role"] for u in admin.get("/api/v1/users").json()] == ["admin"]


def test_wrong_passwords_and_unknown_users_are_401(org: Org) -> None:
    _, email, password = new_user(org)
    http = anonymous(org.server)
    for body in (
        {"email": email, "password": password + "x"},
        {"email": email, "password": ""},
        {"email": "nobody-" + email, "password": password},
    ):
        resp = http.post("/api/v1/auth/login", json=body)
        assert (resp.status_code, resp.json()) == (401, {"detail": "Incorrect email or password"})
    resp = http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200
    assert resp.json()["token_type"] == "bearer"


def test_a_signed_in_user_needs_a_live_account(org: Org) -> None:
    user_id, email, password = new_user(org)
    token = login(org.server, email, password)
    query(org.server, "UPDATE users SET is_active = ? WHERE email = ?", False, email.lower())
    with client(org.server, token) as person:
        resp = person.get("/api/v1/auth/me")
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid credentials"})
    resp = anonymous(org.server).post(
        "/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert resp.status_code == 401
    assert user_id


# -- API keys ----------------------------------------------------------------------------------


def test_api_key_lifecycle(org: Org) -> None:
    p = {"org_id": org.id}
    created = org.admin.post("/api/v1/api-keys", params=p, json={"name": "ci", "role": "operator"})
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("fgk_") and len(key) > 40
    assert (body["name"], body["role"], body["org_id"], body["revoked_at"]) == (
        "ci",
        "operator",
        org.id,
        None,
    )
    assert body["prefix"] == key[:10]
    # Shown once: only its digest is stored, and no listing ever returns it.
    (stored,) = fetch_row(org.server, "api_keys", body["id"], "key_hash")
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    listing = org.get("/api/v1/api-keys")
    assert key not in listing.text
    assert [set(k) for k in listing.json()] == [set(body) - {"key"}]
    assert listing.json()[0]["last_used_at"] is None

    with client(org.server, key) as machine:
        me = machine.get("/api/v1/auth/me").json()
        assert (me["id"], me["email"], me["api_key_id"]) == (None, None, body["id"])
        assert me["organizations"] == [{"id": org.id, "name": org.name, "role": "operator"}]
        made = machine.post("/api/v1/registration-tokens", json={"name": "from ci"})
        assert made.status_code == 201
        assert made.json()["created_by"] is None
        assert machine.get("/api/v1/users").status_code == 403
        assert machine.post("/api/v1/api-keys", json={"name": "more"}).status_code == 403
        assert org.get("/api/v1/api-keys").json()[0]["last_used_at"] is not None

        revoked = org.admin.delete(f"/api/v1/api-keys/{body['id']}", params=p)
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert "key" not in revoked.json()
        refused = machine.get("/api/v1/gateways")
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid credentials"})
    again = org.admin.delete(f"/api/v1/api-keys/{body['id']}", params=p)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    # A revoked key stays listed (with its revocation time) for the record.
    assert [k["revoked_at"] for k in org.get("/api/v1/api-keys").json()] == [
        revoked.json()["revoked_at"]
    ]


def test_keys_are_distinct_and_scoped_to_their_role(org: Org) -> None:
    p = {"org_id": org.id}
    keys = [
        org.admin.post("/api/v1/api-keys", params=p, json={"name": f"k{i}"}).json()
        for i in range(3)
    ]
    assert len({k["key"] for k in keys}) == 3
    assert {k["role"] for k in keys} == {"viewer"}  # the default role
    with client(org.server, keys[0]["key"]) as viewer:
        assert viewer.get("/api/v1/gateways").status_code == 200
        assert viewer.post("/api/v1/registration-tokens", json={"name": "t"}).status_code == 403
    near_miss = keys[0]["key"][:-1] + ("A" if keys[0]["key"][-1] != "A" else "B")
    with client(org.server, near_miss) as forged:
        assert forged.get("/api/v1/gateways").status_code == 401


def test_only_genuine_live_access_tokens_are_accepted(org: Org) -> None:
    user_id, email, password = new_user(org, "admin")
    now = int(time.time())

    def forged(key: str | None = None, **claims: Any) -> str:
        payload = {"sub": user_id, "type": "access", "exp": now + 600, "iat": now, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or org.server.secret_key, algorithm="HS256")

    # The server's key and the right claims make a working token (so the refusals below are
    # about the one thing each of them changes).
    with client(org.server, forged()) as genuine:
        assert genuine.get("/api/v1/auth/me").status_code == 200
    for label, token in {
        "expired": forged(exp=now - 5, iat=now - 600),
        "another key": forged(key="another-key-" + "x" * 40),
        "opamp type": forged(type="opamp_token"),
        "no type": forged(type=None),
        "unknown user": forged(sub=str(uuid.uuid4())),
        "sub not a uuid": forged(sub="admin"),
        "no exp": forged(exp=None),
    }.items():
        with client(org.server, token) as who:
            resp = who.get("/api/v1/auth/me")
            assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid credentials"}), (
                label
            )
    assert login(org.server, email, password)


def test_organisation_names_are_unique(org: Org, superuser: httpx.Client) -> None:
    resp = superuser.post("/api/v1/orgs", json={"name": org.name})
    assert (resp.status_code, resp.json()) == (
        409,
        {"detail": "An organization with this name already exists"},
    )
    for bad in ("", " leading-space", "a/b", "x" * 101, "ünï"):
        assert superuser.post("/api/v1/orgs", json={"name": bad}).status_code == 422, bad


def test_validation_errors_never_echo_the_input(org: Org) -> None:
    secret = f"Secret-{uuid.uuid4().hex}"
    for body in (
        {"email": "not-an-email", "password": secret},
        {"email": "a@b.c", "password": secret, "role": "root"},
        {"email": "a@b.c", "password": secret * 40},
    ):
        resp = org.admin.post("/api/v1/users", params={"org_id": org.id}, json=body)
        assert resp.status_code == 422
        assert secret not in resp.text
    resp = anonymous(org.server).post(
        "/api/v1/auth/login", json={"email": ["x"], "password": secret}
    )
    assert resp.status_code == 422 and secret not in resp.text
    org.server.assert_not_logged(secret)
