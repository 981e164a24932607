"""Browser sessions: the session cookie, its CSRF token, sign-out, expiry and revocation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt

from tests.support.api import Org, client, login
from tests.support.polling import wait_for
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

SESSION, CSRF = "flowgate_session", "flowgate_csrf"
CSRF_REFUSED = {"detail": "CSRF token missing or invalid"}
EXPIRED = {"detail": "Session expired; sign in again"}


def new_user(org: Org, role: str = "operator") -> tuple[str, str]:
    email = f"s-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email, "password": password, "role": role},
    )
    assert resp.status_code == 201, resp.text
    return email, password


def set_cookies(resp: httpx.Response) -> dict[str, dict[str, str]]:
    """The response's Set-Cookie headers: name -> {"value": ..., attribute (lower case): value}."""
    cookies: dict[str, dict[str, str]] = {}
    for header in resp.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        parsed = {"value": value}
        for attribute in attributes:
            key, _, val = attribute.partition("=")
            parsed[key.lower()] = val
        cookies[name] = parsed
    return cookies


def sign_in(server: LiveServer, email: str, password: str, **headers: str) -> httpx.Response:
    # Not the shared anonymous client: its cookie jar would keep the session for every test.
    return httpx.post(
        server.url + "/api/v1/auth/session",
        json={"email": email, "password": password},
        headers=headers,
        timeout=15,
    )


@contextmanager
def browser(server: LiveServer, email: str, password: str) -> Iterator[httpx.Client]:
    """A client that signed in as a browser does: it keeps the cookies it was sent (and sends
    no bearer token)."""
    with httpx.Client(base_url=server.url, timeout=15) as session:
        resp = session.post("/api/v1/auth/session", json={"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        yield session


def csrf(session: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": session.cookies[CSRF]}


def test_sign_in_sets_a_session_cookie_and_a_csrf_cookie(org: Org) -> None:
    email, password = new_user(org)
    resp = sign_in(org.server, email, password)
    assert resp.status_code == 200, resp.text
    with client(org.server, login(org.server, email, password)) as bearer:
        assert resp.json() == {"user": bearer.get("/api/v1/auth/me").json()}
    cookies = set_cookies(resp)
    session, token = cookies[SESSION], cookies[CSRF]
    for cookie in (session, token):
        assert cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/"
        assert "secure" not in cookie  # plain http
        # The session (720 minutes by default) plus the day the cookie outlives it.
        assert int(cookie["max-age"]) == 720 * 60 + 24 * 3600
    assert "httponly" in session
    assert "httponly" not in token  # the page's scripts read it to send it back
    claims = jwt.decode(session["value"], options={"verify_signature": False})
    assert claims["type"] == "session" and claims["ver"] == 0 and claims["sid"]
    assert token["value"] and token["value"] != claims["sid"]
    # Signing in again is another session, with another CSRF token.
    assert set_cookies(sign_in(org.server, email, password))[CSRF]["value"] != token["value"]
    org.server.assert_not_logged(password, session["value"], token["value"])


def test_cookies_are_secure_only_behind_https(org: Org, make_server: Any) -> None:
    email, password = new_user(org)
    # uvicorn itself trusts X-Forwarded-Proto from loopback: without the setting, ignore it.
    resp = sign_in(org.server, email, password, **{"X-Forwarded-Proto": "https"})
    assert all("secure" not in c for c in set_cookies(resp).values())

    trusting: LiveServer = make_server(FLOWGATE_TRUST_PROXY_HEADERS="true")
    http = httpx.Client(base_url=trusting.url, timeout=15)
    admin = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    for proto, secure in (("https", True), ("http", False)):
        resp = http.post("/api/v1/auth/session", json=admin, headers={"X-Forwarded-Proto": proto})
        assert resp.status_code == 200, resp.text
        cookies = set_cookies(resp)
        assert {name: "secure" in c for name, c in cookies.items()} == {
            SESSION: secure,
            CSRF: secure,
        }, proto
    resp = http.delete("/api/v1/auth/session", headers={"X-Forwarded-Proto": "https"})
    assert all("secure" in c for c in set_cookies(resp).values())

    public: LiveServer = make_server(FLOWGATE_PUBLIC_URL="https://flowgate.example.com")
    resp = sign_in(public, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert resp.status_code == 200, resp.text
    assert all("secure" in c for c in set_cookies(resp).values())


def test_the_session_cookie_authenticates_and_writes_need_its_csrf_token(org: Org) -> None:
    email, password = new_user(org)
    with (
        browser(org.server, email, password) as session,
        browser(org.server, email, password) as other,
    ):
        me = session.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["email"] == email
        assert session.get("/api/v1/gateways", params={"org_id": org.id}).status_code == 200

        create = {"url": "/api/v1/registration-tokens", "params": {"org_id": org.id}}
        body = {"name": "from the browser"}
        mine, theirs = session.cookies[CSRF], other.cookies[CSRF]
        for headers, cookies in (
            ({}, {}),  # no header
            ({"X-CSRF-Token": ""}, {}),
            ({"X-CSRF-Token": "nonsense"}, {}),  # does not match the cookie
            ({"X-CSRF-Token": theirs}, {}),  # another session's token
            # Header and cookie agree, as a cookie planted by a sibling domain would, but the
            # token is not this session's.
            ({"X-CSRF-Token": theirs}, {CSRF: theirs}),
            ({"X-CSRF-Token": mine + "x"}, {CSRF: mine + "x"}),
        ):
            jar = {SESSION: session.cookies[SESSION], CSRF: mine, **cookies}
            with httpx.Client(base_url=org.server.url, cookies=jar, timeout=15) as c:
                resp = c.post(**create, json=body, headers=headers)
                assert (resp.status_code, resp.json()) == (403, CSRF_REFUSED), headers
        assert org.get("/api/v1/registration-tokens").json() == []

        resp = session.post(**create, json=body, headers=csrf(session))
        assert resp.status_code == 201, resp.text
        token_id = resp.json()["id"]
        # Every method that changes state is guarded, not just POST.
        gateway = org.register()
        for method, path, json_body in (
            ("PATCH", f"/api/v1/gateways/{gateway['id']}", {"name": "renamed"}),
            ("DELETE", f"/api/v1/registration-tokens/{token_id}", None),
        ):
            url = {"url": path, "params": {"org_id": org.id}}
            resp = session.request(method, **url, json=json_body)
            assert (resp.status_code, resp.json()) == (403, CSRF_REFUSED), method
            resp = session.request(method, **url, json=json_body, headers=csrf(session))
            assert resp.status_code in (200, 204), (method, resp.text)
        assert org.get(f"/api/v1/gateways/{gateway['id']}").json()["name"] == "renamed"


def test_bearer_credentials_need_no_csrf_token(org: Org) -> None:
    email, password = new_user(org)
    token = login(org.server, email, password)
    with browser(org.server, email, password) as session:
        # A bearer token wins over the cookie; browsers never attach one on their own.
        session.headers["Authorization"] = f"Bearer {token}"
        resp = session.post(
            "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "bearer"}
        )
        assert resp.status_code == 201, resp.text
    resp = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "admin"}
    )
    assert resp.status_code == 201, resp.text
    # A bad bearer token is refused as before, a cookie beside it notwithstanding.
    with browser(org.server, email, password) as session:
        resp = session.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid credentials"})


def test_sign_out_clears_both_cookies(org: Org) -> None:
    email, password = new_user(org)
    with browser(org.server, email, password) as session:
        resp = session.delete("/api/v1/auth/session")
        assert resp.status_code == 204, resp.text
        cleared = set_cookies(resp)
        assert set(cleared) == {SESSION, CSRF}
        for cookie in cleared.values():
            assert cookie["value"] in ("", '""') and cookie["max-age"] == "0"
            assert cookie["path"] == "/"
        assert not session.cookies.get(SESSION)
        resp = session.get("/api/v1/auth/me")
        assert (resp.status_code, resp.json()) == (401, {"detail": "Not authenticated"})


def test_an_expired_or_invalid_session_cookie_is_401_session_expired(
    org: Org, make_server: Any
) -> None:
    def me(server: LiveServer, value: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, cookies={SESSION: value}, timeout=15) as c:
            return c.get("/api/v1/auth/me")

    email, password = new_user(org)
    good = set_cookies(sign_in(org.server, email, password))[SESSION]["value"]
    assert me(org.server, good).status_code == 200
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode({**claims, "ver": 0}, "another key, not the server's " * 2, "HS256")
    access = login(org.server, email, password)  # an access token is not a session token
    for value in ("nonsense", good[:-4] + "AAAA", forged, access, "x" * 5000):
        resp = me(org.server, value)
        assert (resp.status_code, resp.json()) == (401, EXPIRED), value[:20]

    short: LiveServer = make_server(FLOWGATE_SESSION_TTL_MINUTES="0.1")  # 6 seconds
    cookie = set_cookies(sign_in(short, ADMIN_EMAIL, ADMIN_PASSWORD))[SESSION]
    assert int(cookie["max-age"]) == 6 + 24 * 3600  # the browser still sends it after expiry
    assert me(short, cookie["value"]).status_code == 200
    resp = wait_for(lambda: (r := me(short, cookie["value"])).status_code != 200 and r, 20)
    assert (resp.status_code, resp.json()) == (401, EXPIRED)


def test_a_password_change_ends_every_other_session(org: Org) -> None:
    email, password = new_user(org)
    with (
        browser(org.server, email, password) as session,
        browser(org.server, email, password) as other,
    ):
        stale = dict(session.cookies)
        new_password = f"new-{uuid.uuid4().hex[:12]}"
        resp = session.post(
            "/api/v1/auth/password",
            json={"current_password": password, "new_password": new_password},
            headers=csrf(session),
        )
        assert resp.status_code == 200, resp.text
        # The session that made the change continues on a fresh cookie; the others end.
        assert set(set_cookies(resp)) == {SESSION, CSRF}
        assert session.get("/api/v1/auth/me").status_code == 200
        resp = session.post(
            "/api/v1/registration-tokens",
            params={"org_id": org.id},
            json={"name": "after the change"},
            headers=csrf(session),
        )
        assert resp.status_code == 201, resp.text
        for cookies in (dict(other.cookies), stale):
            with httpx.Client(base_url=org.server.url, cookies=cookies, timeout=15) as c:
                resp = c.get("/api/v1/auth/me")
                assert (resp.status_code, resp.json()) == (401, EXPIRED)

    # A change made elsewhere (here with a bearer token) ends the browser session too.
    with browser(org.server, email, new_password) as session:
        with client(org.server, login(org.server, email, new_password)) as bearer:
            resp = bearer.post(
                "/api/v1/auth/password",
                json={"current_password": new_password, "new_password": password},
            )
            assert resp.status_code == 200, resp.text
            assert "set-cookie" not in resp.headers
        resp = session.get("/api/v1/auth/me")
        assert (resp.status_code, resp.json()) == (401, EXPIRED)


def test_session_sign_in_is_throttled_like_login(org: Org) -> None:
    email, password = new_user(org)
    for _ in range(5):  # FLOWGATE_LOGIN_MAX_FAILURES_PER_ACCOUNT
        resp = sign_in(org.server, email, "wrong password")
        assert (resp.status_code, resp.json()) == (401, {"detail": "Incorrect email or password"})
        assert "set-cookie" not in resp.headers
    resp = sign_in(org.server, email, password)
    assert resp.status_code == 429 and "Retry-After" in resp.headers, resp.text
    assert "set-cookie" not in resp.headers
    org.server.assert_not_logged(password)
