"""Security headers on every HTTP response: successes, errors (404, 413, 422, 401), the native
OpAMP endpoints (which bypass FastAPI) and the docs page; no caching of anything under /api/."""

from __future__ import annotations

import uuid

import httpx

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, anonymous

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def assert_api_headers(resp: httpx.Response) -> None:
    label = (resp.request.method, resp.request.url.path, resp.status_code)
    for name, value in COMMON.items():
        assert resp.headers.get(name) == value, (label, name)
    assert resp.headers.get("content-security-policy") == API_CSP, label
    assert resp.headers.get_list("cache-control") == ["no-store"], label


def test_api_answers_of_every_kind_carry_the_headers(org: Org) -> None:
    http = anonymous(org.server)
    answers = {
        200: org.get("/api/v1/auth/me"),
        201: org.admin.post(
            "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "h"}
        ),
        401: http.get("/api/v1/auth/me"),
        404: org.get(f"/api/v1/gateways/{uuid.uuid4()}"),
        405: http.put("/api/v1/auth/login"),
        413: http.post("/api/v1/auth/login", content=b"x" * (2 * 1024 * 1024)),
        422: http.post("/api/v1/auth/login", json={"email": ["x"]}),
    }
    for status, resp in answers.items():
        assert resp.status_code == status, resp.text
        assert_api_headers(resp)
    # An unknown path outside any router is a 404 from the framework itself.
    resp = http.get(f"/api/v2/{uuid.uuid4().hex}")
    assert resp.status_code == 404
    assert_api_headers(resp)


def test_native_opamp_http_answers_carry_the_headers(org: Org) -> None:
    token = org.register()["opamp_token"]
    message = opamp_pb2.AgentToServer(
        instance_uid=uuid.uuid4().bytes, sequence_num=0, capabilities=1
    ).SerializeToString()
    for path in ("/api/v1/opamp/v1/opamp", "/v1/opamp"):
        for auth, status in ((f"Bearer {token}", 200), ("Bearer nonsense", 401)):
            resp = httpx.post(
                org.server.url + path,
                content=message,
                headers={"Content-Type": "application/x-protobuf", "Authorization": auth},
                timeout=15,
            )
            assert resp.status_code == status, (path, resp.text)
            for name, value in COMMON.items():
                assert resp.headers.get(name) == value, (path, status, name)
            if path.startswith("/api/"):
                assert_api_headers(resp)
            else:
                assert resp.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_pages_may_not_be_framed_but_keep_their_own_resources(org: Org) -> None:
    http = anonymous(org.server)
    for path in ("/docs", "/healthz", "/openapi.json", "/metrics"):
        resp = http.get(path)
        assert resp.status_code == 200, path
        for name, value in COMMON.items():
            assert resp.headers.get(name) == value, (path, name)
        # Only framing is restricted: the Swagger UI loads its scripts and styles from a CDN and
        # runs an inline script, which a default-src policy would block.
        assert resp.headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert "no-store" not in resp.headers.get("cache-control", ""), path
    assert "cdn.jsdelivr.net" in http.get("/docs").text
