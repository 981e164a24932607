"""Sign-in throttling on a real server: failures per account and per client address are
refused with 429 + Retry-After (the correct password included) until the window has passed;
other accounts and addresses are unaffected; concurrency does not buy extra guesses."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.api import new_org, superuser_client
from tests.support.server import LiveServer

LOCKED = "even with the correct password"


def sign_in(server: LiveServer, email: str, password: str, source: str = "127.0.0.1") -> Any:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.url, transport=transport, timeout=15) as http:
        return http.post("/api/v1/auth/login", json={"email": email, "password": password})


def people(server: LiveServer, count: int) -> list[tuple[str, str]]:
    with superuser_client(server) as admin:
        org = new_org(server, admin)
        found = []
        for _ in range(count):
            email = f"t-{uuid.uuid4().hex[:8]}@example.com"
            password = f"pw-{uuid.uuid4().hex[:12]}"
            resp = admin.post(
                "/api/v1/users",
                params={"org_id": org.id},
                json={"email": email, "password": password},
            )
            assert resp.status_code == 201, resp.text
            found.append((email, password))
    return found


def retry_after(resp: httpx.Response) -> int:
    assert resp.status_code == 429, resp.text
    return int(resp.headers["retry-after"])


def test_an_account_is_locked_after_its_failures_until_the_window_passes(
    make_server: Any,
) -> None:
    server: LiveServer = make_server(
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ACCOUNT="3",
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
        FLOWGATE_LOGIN_FAILURE_WINDOW_SECONDS="3",
        FLOWGATE_LOGIN_DELAY_BASE_SECONDS="0",
    )
    (email, password), (other, other_password) = people(server, 2)
    wrong = f"wrong-{uuid.uuid4().hex}"
    for _ in range(3):
        assert sign_in(server, email, wrong).status_code == 401
    # Locked: the correct password is refused too, and the answer says so.
    for attempt in (wrong, password):
        resp = sign_in(server, email.upper(), attempt)
        assert 1 <= retry_after(resp) <= 3
        assert LOCKED in resp.json()["detail"], resp.json()
        assert "this account" in resp.json()["detail"]
    # Another account is unaffected.
    assert sign_in(server, other, other_password).status_code == 200
    # After the window the correct password works, and it clears the account's failures.
    time.sleep(retry_after(sign_in(server, email, password)) + 0.2)
    assert sign_in(server, email, password).status_code == 200
    for _ in range(2):
        assert sign_in(server, email, wrong).status_code == 401
    assert sign_in(server, email, password).status_code == 200
    # Unknown accounts are throttled the same way (the answers do not tell who exists).
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    codes = [sign_in(server, nobody, wrong).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # Neither the email nor the password of a failed sign-in is ever logged.
    server.assert_not_logged(wrong, email, email.lower(), nobody)


def test_failures_space_out_the_next_attempt_exponentially(make_server: Any) -> None:
    server: LiveServer = make_server(
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ACCOUNT="5",
        FLOWGATE_LOGIN_DELAY_BASE_SECONDS="2",
    )
    (email, password), (other, other_password) = people(server, 2)
    assert sign_in(server, email, "wrong-password").status_code == 401
    resp = sign_in(server, email, password)  # too soon, even with the right password
    assert retry_after(resp) in (1, 2)  # base 2 s (a slow machine may have used up part of it)
    assert "seconds before trying again" in resp.json()["detail"]
    assert sign_in(server, other, other_password).status_code == 200
    time.sleep(2.1)
    assert sign_in(server, email, "wrong-password").status_code == 401
    # Two failures: the wait doubles.
    assert retry_after(sign_in(server, email, password)) in (3, 4)
    time.sleep(4.1)
    assert sign_in(server, email, password).status_code == 200
    assert sign_in(server, email, "wrong-password").status_code == 401
    assert retry_after(sign_in(server, email, password)) in (1, 2)  # the success reset the count


def test_an_address_is_locked_after_its_failures_others_are_not(make_server: Any) -> None:
    server: LiveServer = make_server(
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ACCOUNT="100",
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS="4",
        FLOWGATE_LOGIN_FAILURE_WINDOW_SECONDS="60",
        FLOWGATE_LOGIN_DELAY_BASE_SECONDS="0",
    )
    ((email, password),) = people(server, 1)
    # Guesses against many accounts from one address (127.0.0.2 is loopback too on Linux).
    for _ in range(4):
        stranger = f"s-{uuid.uuid4().hex[:8]}@example.com"
        assert sign_in(server, stranger, "guess-123", "127.0.0.2").status_code == 401
    resp = sign_in(server, email, password, "127.0.0.2")
    assert 50 <= retry_after(resp) <= 60
    assert LOCKED in resp.json()["detail"] and "this address" in resp.json()["detail"]
    assert sign_in(server, email, password, "127.0.0.3").status_code == 200


def test_concurrent_guesses_get_no_more_tries_than_the_limit(make_server: Any) -> None:
    server: LiveServer = make_server(
        FLOWGATE_LOGIN_MAX_FAILURES_PER_ACCOUNT="3",
        FLOWGATE_LOGIN_DELAY_BASE_SECONDS="0",
    )
    ((email, _),) = people(server, 1)
    barrier = threading.Barrier(12)

    def guess(i: int) -> int:
        barrier.wait()
        status: int = sign_in(server, email, f"guess-{i}").status_code
        return status

    with ThreadPoolExecutor(12) as pool:
        codes = sorted(pool.map(guess, range(12)))
    assert codes == [401] * 3 + [429] * 9, codes
