"""Registration tokens: shown once and stored as a SHA-256 digest; single use by default,
``max_uses`` N or unlimited; expiry and revocation; idempotent re-registration."""

from __future__ import annotations

import hashlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.api import Org, anonymous, new_org
from tests.support.db import fetch_row, query, update_row

INVALID_TOKEN = {"detail": "Invalid or expired registration token"}
INVALID_OPAMP = {"detail": "Invalid OpAMP token"}


def register(org: Org, token: str, instance_id: str | None = None, **body: Any) -> httpx.Response:
    body.setdefault("name", "gw")
    body["instance_id"] = instance_id or f"gw-{uuid.uuid4().hex[:10]}"
    return anonymous(org.server).post(
        "/api/v1/gateways",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def create_token(org: Org, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "test token")
    resp = org.admin.post("/api/v1/registration-tokens", params={"org_id": org.id}, json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def listed(org: Org, token_id: str) -> dict[str, Any]:
    resp = org.get("/api/v1/registration-tokens")
    assert resp.status_code == 200, resp.text
    items = {t["id"]: t for t in resp.json()}
    assert "token" not in items[token_id]
    result: dict[str, Any] = items[token_id]
    return result


def heartbeat(org: Org, instance_id: str, opamp_token: str) -> httpx.Response:
    return anonymous(org.server).post(
        f"/api/v1/opamp/heartbeat/{instance_id}",
        headers={"Authorization": f"Bearer {opamp_token}"},
    )


def gateway_count(org: Org) -> int:
    total: int = org.get("/api/v1/gateways").json()["summary"]["total"]
    return total


def test_token_is_shown_once_and_stored_as_its_sha256_digest(org: Org) -> None:
    created = create_token(org, name="Gateway Registration", expires_in_days=30)
    token = created["token"]
    assert len(token) == 64  # 48 random bytes, URL-safe base64
    assert created["name"] == "Gateway Registration"
    assert created["org_id"] == org.id
    assert created["is_active"] is True
    assert created["max_uses"] == 1
    assert created["use_count"] == 0
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)

    entry = listed(org, created["id"])
    assert token not in str(entry)
    (stored,) = fetch_row(org.server, "registration_tokens", created["id"], "token")
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    rows = query(org.server, "SELECT count(*) FROM registration_tokens WHERE token = ?", token)
    assert rows == [(0,)]
    org.server.assert_not_logged(token)


def test_single_use_by_default(org: Org) -> None:
    created = create_token(org)
    first = register(org, created["token"])
    assert first.status_code == 201, first.text
    second = register(org, created["token"])
    assert second.status_code == 401
    assert second.json() == INVALID_TOKEN
    assert second.headers["www-authenticate"] == "Bearer"
    assert gateway_count(org) == 1
    entry = listed(org, created["id"])
    assert entry["use_count"] == 1
    assert entry["last_used_at"] is not None


def test_max_uses_counts_registrations(org: Org) -> None:
    created = create_token(org, max_uses=3)
    statuses = [register(org, created["token"]).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 401]
    assert listed(org, created["id"])["use_count"] == 3
    assert gateway_count(org) == 3


def test_max_uses_null_is_unlimited(org: Org) -> None:
    created = create_token(org, max_uses=None)
    assert created["max_uses"] is None
    statuses = [register(org, created["token"]).status_code for _ in range(5)]
    assert statuses == [201] * 5
    entry = listed(org, created["id"])
    assert (entry["max_uses"], entry["use_count"]) == (None, 5)


def test_concurrent_registrations_never_exceed_max_uses(org: Org) -> None:
    created = create_token(org, max_uses=2)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: register(org, created["token"]).status_code, range(8)))
    assert sorted(codes) == [201, 201] + [401] * 6
    assert listed(org, created["id"])["use_count"] == 2
    assert gateway_count(org) == 2


def test_expired_token_is_refused(org: Org) -> None:
    created = create_token(org, max_uses=None)
    assert register(org, created["token"], "before-expiry").status_code == 201
    past = datetime.now(UTC) - timedelta(seconds=1)
    update_row(org.server, "registration_tokens", created["id"], expires_at=past)
    resp = register(org, created["token"], "after-expiry")
    assert resp.status_code == 401
    assert resp.json() == INVALID_TOKEN
    # Re-enrolling the gateway it registered needs a valid token too.
    assert register(org, created["token"], "before-expiry").status_code == 401
    assert listed(org, created["id"])["use_count"] == 1
    names = [g["instance_id"] for g in org.get("/api/v1/gateways").json()["items"]]
    assert names == ["before-expiry"]


def test_revoked_token_is_refused(org: Org) -> None:
    created = create_token(org, max_uses=None)
    assert register(org, created["token"], "before-revoke").status_code == 201
    revoked = org.admin.delete(
        f"/api/v1/registration-tokens/{created['id']}", params={"org_id": org.id}
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["is_active"] is False
    assert revoked.json()["revoked_at"] is not None
    for instance_id in ("after-revoke", "before-revoke"):
        resp = register(org, created["token"], instance_id)
        assert (resp.status_code, resp.json()) == (401, INVALID_TOKEN)
    entry = listed(org, created["id"])
    assert (entry["is_active"], entry["use_count"]) == (False, 1)
    # Revoking again is harmless and keeps the first revocation time.
    again = org.admin.delete(
        f"/api/v1/registration-tokens/{created['id']}", params={"org_id": org.id}
    )
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_unknown_token_id_cannot_be_revoked(org: Org) -> None:
    resp = org.admin.delete(
        f"/api/v1/registration-tokens/{uuid.uuid4()}", params={"org_id": org.id}
    )
    assert (resp.status_code, resp.json()) == (404, {"detail": "Registration token not found"})


def test_reregistration_with_the_same_token_is_idempotent(org: Org) -> None:
    created = create_token(org)  # single use
    first = register(org, created["token"], "gw-same", name="first name")
    assert first.status_code == 201, first.text
    again = register(org, created["token"], "gw-same", name="second name")
    assert again.status_code == 200, again.text
    one, two = first.json(), again.json()
    assert two["id"] == one["id"]
    assert two["instance_id"] == "gw-same"
    assert two["name"] == "second name"
    assert two["opamp_token"] != one["opamp_token"]
    # Only the newest OpAMP token's digest is stored: the old one stops working.
    old = heartbeat(org, "gw-same", one["opamp_token"])
    assert (old.status_code, old.json()) == (401, INVALID_OPAMP)
    new = heartbeat(org, "gw-same", two["opamp_token"])
    assert new.status_code == 200, new.text
    (stored,) = fetch_row(org.server, "gateways", one["id"], "opamp_token")
    assert stored == hashlib.sha256(two["opamp_token"].encode()).hexdigest()
    # No use was spent and no second gateway exists; a new instance still needs a use.
    assert listed(org, created["id"])["use_count"] == 1
    assert gateway_count(org) == 1
    other = register(org, created["token"], "gw-other")
    assert (other.status_code, other.json()) == (401, INVALID_TOKEN)
    org.server.assert_not_logged(created["token"], one["opamp_token"], two["opamp_token"])


def test_another_token_of_the_org_reenrols_and_spends_a_use(org: Org) -> None:
    first_token = create_token(org)
    second_token = create_token(org)
    one = register(org, first_token["token"], "gw-moved")
    assert one.status_code == 201
    two = register(org, second_token["token"], "gw-moved")
    assert two.status_code == 200, two.text
    assert two.json()["id"] == one.json()["id"]
    assert listed(org, second_token["id"])["use_count"] == 1
    assert heartbeat(org, "gw-moved", one.json()["opamp_token"]).status_code == 401
    assert heartbeat(org, "gw-moved", two.json()["opamp_token"]).status_code == 200


def test_writes_are_visible_to_the_very_next_request(org: Org, superuser: httpx.Client) -> None:
    """Read-your-writes: the unit of work commits before the response leaves the server, so a
    client may use what it was just given (an organisation, a token) in its next request.
    A commit after the response made this fail now and then."""
    for _ in range(25):
        fresh = new_org(org.server, superuser)
        listing = fresh.get("/api/v1/gateways")
        assert listing.status_code == 200, listing.text
        resp = register(fresh, fresh.registration_token())
        assert resp.status_code == 201, resp.text
        hb = heartbeat(fresh, resp.json()["instance_id"], resp.json()["opamp_token"])
        assert hb.status_code == 200, hb.text


def test_token_create_validation(org: Org) -> None:
    for body in (
        {},
        {"name": ""},
        {"name": "x", "expires_in_days": 0},
        {"name": "x", "expires_in_days": 3651},
        {"name": "x", "max_uses": 0},
        {"name": "x", "max_uses": "many"},
        {"name": "x" * 201},
    ):
        resp = org.admin.post("/api/v1/registration-tokens", params={"org_id": org.id}, json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert org.get("/api/v1/registration-tokens").json() == []


def test_tokens_are_listed_newest_first_with_their_creator(org: Org) -> None:
    older = create_token(org, name="older")
    newer = create_token(org, name="newer")
    items = org.get("/api/v1/registration-tokens").json()
    assert [t["id"] for t in items] == [newer["id"], older["id"]]
    me = org.admin.get("/api/v1/auth/me").json()
    assert {t["created_by"] for t in items} == {me["id"]}


def test_default_expiry_comes_from_the_setting(make_server: Any) -> None:
    from tests.support.api import superuser_client

    server = make_server(FLOWGATE_REGISTRATION_TOKEN_DEFAULT_DAYS="3")
    with superuser_client(server) as su:
        org = new_org(server, su)
        created = create_token(org)
        expires = datetime.fromisoformat(created["expires_at"])
        assert abs(expires - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=1)
        cli = server.cli("tokens", "create", "--org", org.name, "--name", "cli")
        listed_tokens = org.get("/api/v1/registration-tokens").json()
        by_name = {t["name"]: t for t in listed_tokens}
        assert cli.stdout.strip()
        cli_expiry = datetime.fromisoformat(by_name["cli"]["expires_at"])
        assert abs(cli_expiry - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=1)
