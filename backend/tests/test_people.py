"""People and machine credentials: sign-in, users and roles in an organisation, API keys."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt

from tests.support.api import Org, anonymous, client, login, new_org
from tests.support.db import fetch_row, query
from tests.support.server import LiveServer


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


def test_an_existing_email_with_a_password_is_409(org: Org) -> None:
    _, email, password = new_user(org)
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email.upper(), "password": "password-123"},
    )
    assert (resp.status_code, resp.json()) == (
        409,
        {
            "detail": "A user with this email already exists: omit the password to add them "
            "to this organization (their password stays theirs)"
        },
    )
    assert login(org.server, email, password)  # the password was not changed


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


# -- two admins at once ------------------------------------------------------------------------


def admin_pair(org: Org, superuser: httpx.Client) -> tuple[Org, list[tuple[str, str, str]]]:
    """A fresh org whose only admins are two regular users (the superuser leaves it)."""
    fresh = new_org(org.server, superuser)
    admins = [new_user(fresh, "admin") for _ in range(2)]
    me = superuser.get("/api/v1/auth/me").json()
    resp = superuser.delete(f"/api/v1/users/{me['id']}", params={"org_id": fresh.id})
    assert resp.status_code == 204, resp.text
    return fresh, admins


def cross_fire(
    org: Org,
    sessions: list[httpx.Client],
    admins: list[tuple[str, str, str]],
    kinds: tuple[str, str],
) -> list[tuple[int, httpx.Response]]:
    """Both admins at once, ``PER_SIDE`` requests each, aimed at the other: (side, response)."""
    barrier = threading.Barrier(2 * PER_SIDE)

    def fire(side: int) -> httpx.Response:
        kind = kinds[side]
        body = {"role": "viewer"} if kind == "PATCH" else None
        barrier.wait()
        return sessions[side].request(
            kind, f"/api/v1/users/{admins[1 - side][0]}", params={"org_id": org.id}, json=body
        )

    with ThreadPoolExecutor(2 * PER_SIDE) as pool:
        futures = [(side, pool.submit(fire, side)) for side in (0, 1) for _ in range(PER_SIDE)]
        return [(side, f.result()) for side, f in futures]


PER_SIDE = 3


def test_two_admins_demoting_each_other_at_once_keep_one_admin(
    org: Org, superuser: httpx.Client
) -> None:
    fresh, admins = admin_pair(org, superuser)
    sessions = [client(fresh.server, login(fresh.server, e, p)) for _, e, p in admins]
    conflicts = 0
    # Each round both admins fire at once at the other: demotions, removals, or one of each.
    for rnd, kinds in enumerate(
        [("PATCH", "PATCH"), ("DELETE", "DELETE"), ("PATCH", "DELETE")] * 3
    ):
        results = cross_fire(fresh, sessions, admins, kinds)
        winners = {side for side, r in results if r.status_code in (200, 204)}
        assert len(winners) == 1, (rnd, [(s, r.status_code, r.text) for s, r in results])
        for _side, resp in results:
            assert resp.status_code in (200, 204, 403, 404, 409), resp.text
            if resp.status_code >= 400:
                assert isinstance(resp.json()["detail"], str) and resp.json()["detail"]
            if resp.status_code == 409:
                conflicts += 1
                assert resp.json() == {"detail": "An organization must keep at least one admin"}
        keeper = sessions[winners.pop()]
        p = {"org_id": fresh.id}
        members = {u["id"]: u["role"] for u in keeper.get("/api/v1/users", params=p).json()}
        assert list(members.values()).count("admin") == 1, (rnd, members)
        # The remaining admin restores the other one (re-adding a removed one by email).
        loser_id, loser_email, _ = next(a for a in admins if members.get(a[0]) != "admin")
        if loser_id in members:
            resp = keeper.patch(f"/api/v1/users/{loser_id}", params=p, json={"role": "admin"})
        else:
            body = {"email": loser_email, "role": "admin"}
            resp = keeper.post("/api/v1/users", params=p, json=body)
        assert resp.status_code in (200, 201), resp.text
    # Requests authorised before the winner committed met the lock and were refused with 409;
    # later ones no longer came from an admin (403, or 404 once removed).
    assert conflicts > 0
    for s in sessions:
        s.close()


# -- passwords ---------------------------------------------------------------------------------


def test_changing_ones_password_signs_out_every_session(org: Org) -> None:
    user_id, email, password = new_user(org)
    tokens = [login(org.server, email, password) for _ in range(2)]
    (before,) = fetch_row(org.server, "users", user_id, "password_hash")
    with client(org.server, tokens[0]) as person:
        for body, status in (
            ({"current_password": password + "x", "new_password": "new-password-1"}, 400),
            ({"current_password": "", "new_password": "new-password-1"}, 400),
            ({"current_password": password, "new_password": "short"}, 422),
            ({"current_password": password}, 422),
        ):
            resp = person.post("/api/v1/auth/password", json=body)
            assert resp.status_code == status, resp.text
            if status == 400:
                assert resp.json() == {"detail": "The current password is incorrect"}
        assert person.get("/api/v1/auth/me").status_code == 200  # nothing changed yet
        new_password = f"new-{uuid.uuid4().hex[:12]}"
        resp = person.post(
            "/api/v1/auth/password",
            json={"current_password": password, "new_password": new_password},
        )
        assert resp.status_code == 200, resp.text
        fresh = resp.json()["access_token"]
        # Every token issued before the change is refused, the caller's own included.
        for old in tokens:
            with client(org.server, old) as stale:
                resp = stale.get("/api/v1/auth/me")
                assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid credentials"})
    with client(org.server, fresh) as person:
        assert person.get("/api/v1/auth/me").json()["id"] == user_id
    (after,) = fetch_row(org.server, "users", user_id, "password_hash")
    assert after != before and after.startswith("$argon2") and new_password not in after
    http = anonymous(org.server)
    assert (
        http.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code
        == 401
    )
    with client(org.server, login(org.server, email, new_password)) as person:
        assert person.get("/api/v1/auth/me").status_code == 200
    org.server.assert_not_logged(password, new_password)


def test_api_keys_have_no_password_to_change(org: Org) -> None:
    key = org.admin.post("/api/v1/api-keys", params={"org_id": org.id}, json={"name": "k"}).json()
    with client(org.server, key["key"]) as machine:
        resp = machine.post(
            "/api/v1/auth/password",
            json={"current_password": "whatever-1", "new_password": "whatever-2"},
        )
        assert (resp.status_code, resp.json()) == (403, {"detail": "API keys have no password"})


def test_an_admin_resets_the_password_of_their_members_only(
    org: Org, superuser: httpx.Client
) -> None:
    server = org.server
    # A regular admin of org A, and an org B where that admin is not an admin.
    org_a, org_b = new_org(server, superuser), new_org(server, superuser)
    _, admin_email, admin_password = new_user(org_a, "admin")
    only_a, only_a_email, only_a_password = new_user(org_a, "viewer")
    both, both_email, both_password = new_user(org_a, "operator")
    resp = superuser.post(
        "/api/v1/users", params={"org_id": org_b.id}, json={"email": both_email, "role": "viewer"}
    )
    assert resp.status_code == 201, resp.text
    only_b, _, _ = new_user(org_b, "viewer")
    me = superuser.get("/api/v1/auth/me").json()
    old_token = login(server, only_a_email, only_a_password)

    def reset(
        who: httpx.Client, user_id: str, password: str = "reset-password-1"
    ) -> httpx.Response:
        return who.post(f"/api/v1/users/{user_id}/password", json={"new_password": password})

    with client(server, login(server, admin_email, admin_password)) as admin:
        resp = reset(admin, only_a)
        assert resp.status_code == 204, resp.text
        expected = {
            both: (
                403,
                "Resetting a password requires the admin role in every organization the user "
                "belongs to",
            ),
            me["id"]: (403, "Only a superuser can reset a superuser's password"),
            only_b: (404, "User not found"),
            str(uuid.uuid4()): (404, "User not found"),
        }
        for user_id, (status, detail) in expected.items():
            resp = reset(admin, user_id)
            assert (resp.status_code, resp.json()) == (status, {"detail": detail}), user_id
        resp = reset(admin, only_a, "short")
        assert resp.status_code == 422
        own = admin.get("/api/v1/auth/me").json()["id"]
        resp = reset(admin, own)
        assert resp.status_code == 400 and "/api/v1/auth/password" in resp.json()["detail"]
    # The reset signs the user out and the new password works; "both" kept theirs.
    with client(server, old_token) as stale:
        assert stale.get("/api/v1/auth/me").status_code == 401
    assert login(server, only_a_email, "reset-password-1")
    assert login(server, both_email, both_password)
    # A viewer of the user's only org may not reset it; a superuser may reset anyone's.
    with org_a.user("viewer") as viewer:
        resp = reset(viewer, only_a)
        assert resp.status_code == 403
    assert reset(superuser, both).status_code == 204
    assert login(server, both_email, "reset-password-1")


def test_a_superuser_resets_the_password_of_a_user_without_an_org(
    org: Org, superuser: httpx.Client
) -> None:
    user_id, email, _ = new_user(org)
    assert (
        org.admin.delete(f"/api/v1/users/{user_id}", params={"org_id": org.id}).status_code == 204
    )
    resp = superuser.post(f"/api/v1/users/{user_id}/password", json={"new_password": "lonely-pw-1"})
    assert resp.status_code == 204, resp.text
    with client(org.server, login(org.server, email, "lonely-pw-1")) as person:
        assert person.get("/api/v1/auth/me").json()["organizations"] == []


# -- one person, several organisations --------------------------------------------------------


def test_an_existing_user_joins_a_second_organisation(org: Org, superuser: httpx.Client) -> None:
    user_id, email, password = new_user(org, "viewer")
    second = new_org(org.server, superuser)
    p = {"org_id": second.id}
    resp = superuser.post(
        "/api/v1/users", params=p, json={"email": email.upper(), "role": "operator"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["id"], body["email"], body["role"]) == (user_id, email.lower(), "operator")
    for payload, status, detail in (
        (
            {"email": email, "role": "admin"},
            409,
            "This user is already a member of this organization",
        ),
        (
            {"email": f"nobody-{uuid.uuid4().hex[:6]}@example.com"},
            400,
            "No user has this email: give a password to create one",
        ),
    ):
        resp = superuser.post("/api/v1/users", params=p, json=payload)
        assert (resp.status_code, resp.json()) == (status, {"detail": detail})
    # The password is still the user's own, and the user now sees both organisations.
    with client(org.server, login(org.server, email, password)) as person:
        me = person.get("/api/v1/auth/me").json()
        assert sorted((o["name"], o["role"]) for o in me["organizations"]) == sorted(
            [(org.name, "viewer"), (second.name, "operator")]
        )
        resp = person.get("/api/v1/gateways")
        assert resp.status_code == 400 and "org_id is required" in resp.json()["detail"]
        assert person.get("/api/v1/gateways", params=p).status_code == 200
        # Leaving one organisation leaves the other untouched.
        assert (
            org.admin.delete(f"/api/v1/users/{user_id}", params={"org_id": org.id}).status_code
            == 204
        )
        me = person.get("/api/v1/auth/me").json()
        assert [(o["name"], o["role"]) for o in me["organizations"]] == [(second.name, "operator")]


def test_concurrent_additions_of_one_user_are_one_membership(
    org: Org, superuser: httpx.Client
) -> None:
    _, email, _ = new_user(org)
    second = new_org(org.server, superuser)
    barrier = threading.Barrier(6)

    def add() -> httpx.Response:
        barrier.wait()
        return superuser.post("/api/v1/users", params={"org_id": second.id}, json={"email": email})

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda _: add(), range(6)))
    assert codes == [201] + [409] * 5, codes
    assert [u["email"] for u in second.get("/api/v1/users").json()].count(email.lower()) == 1


# -- the users CLI -----------------------------------------------------------------------------


def cli(server: LiveServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowgate", *args],
        env=server.env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_adds_a_user_to_an_org_and_sets_passwords(org: Org, superuser: httpx.Client) -> None:
    server = org.server
    user_id, email, password = new_user(org)
    old_token = login(server, email, password)
    second = new_org(server, superuser)

    added = cli(server, "users", "add", email, "--org", second.name, "--role", "operator")
    assert added.returncode == 0, added.stderr
    assert added.stdout == f"{user_id}\n"
    roles = {u["email"]: u["role"] for u in second.get("/api/v1/users").json()}
    assert roles[email.lower()] == "operator"
    again = cli(server, "users", "add", email, "--org", second.name)
    assert again.returncode == 1 and "already a member" in again.stderr
    nobody = cli(server, "users", "add", "nobody@example.com", "--org", second.name)
    assert nobody.returncode == 1 and "flowgate users create" in nobody.stderr

    new_password = f"cli-{uuid.uuid4().hex[:12]}"
    changed = cli(
        server,
        "users",
        "set-password",
        email.upper(),
        "--password-stdin",
        stdin=new_password + "\n",
    )
    assert changed.returncode == 0, changed.stderr
    assert new_password not in changed.stdout + changed.stderr
    with client(server, old_token) as stale:
        assert stale.get("/api/v1/auth/me").status_code == 401
    assert login(server, email, new_password)
    short = cli(server, "users", "set-password", email, "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    unknown = cli(
        server,
        "users",
        "set-password",
        "nobody@example.com",
        "--password-stdin",
        stdin="long-enough-1\n",
    )
    assert unknown.returncode == 1 and "User not found" in unknown.stderr
    assert login(server, email, new_password)  # refused attempts changed nothing
