"""Bad input gets a clear 4xx and changes nothing: malformed JSON, wrong types, oversized bodies,
text a database cannot store, odd instance ids, unknown ids."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, anonymous
from tests.support.db import fetch_row, wait_flushed
from tests.support.polling import wait_for
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

JSON = {"content-type": "application/json"}
MIB = 1024 * 1024


def flush_failures(server: LiveServer) -> float:
    text = anonymous(server).get("/metrics").text
    match = re.search(r"^flowgate_presence_flush_failures_total ([0-9.e+]+)$", text, re.M)
    assert match, "flowgate_presence_flush_failures_total missing from /metrics"
    return float(match.group(1))


def raw_post(org: Org, path: str, content: bytes, token: str | None = None) -> httpx.Response:
    headers = dict(JSON)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return anonymous(org.server).post(path, content=content, headers=headers)


def token_uses(org: Org, token_id: str) -> int:
    (uses,) = fetch_row(org.server, "registration_tokens", token_id, "use_count")
    return int(uses)


# Raw JSON texts that no endpoint may store: each must be refused before anything is written.
UNSTORABLE = [
    b'"a\\u0000b"',  # NUL: PostgreSQL text/jsonb cannot hold it
    b'"a\\ud800b"',  # unpaired surrogate
    b'"\\udfff"',
    b"Infinity",  # not JSON, but Python's parser accepts it
    b"-Infinity",
    b"NaN",
]


def registration_bodies() -> Iterator[tuple[str, bytes]]:
    yield "malformed", b'{"name": "gw", "instance_id": '
    yield "not an object", b'["gw"]'
    yield "null", b"null"
    yield "empty", b""
    yield "binary", b"\xff\xfe\x00\x01"
    yield "wrong types", b'{"name": 5, "instance_id": ["x"]}'
    yield "metadata not an object", b'{"name": "gw", "instance_id": "x", "metadata": "v1"}'
    yield "label not a string", b'{"name": "gw", "instance_id": "x", "labels": {"a": 1}}'
    yield (
        "too many capabilities",
        (
            b'{"name": "gw", "instance_id": "x", "metadata": {"capabilities": ['
            + b",".join(b'"c"' for _ in range(65))
            + b"]}}"
        ),
    )
    for value in UNSTORABLE:
        yield f"name {value!r}", b'{"name": ' + value + b', "instance_id": "x"}'
        yield (
            f"hostname {value!r}",
            b'{"name": "gw", "instance_id": "x", "hostname": ' + value + b"}",
        )
        yield (
            f"metadata extra {value!r}",
            (
                b'{"name": "gw", "instance_id": "x", "metadata": {"extra": {"deep": ['
                + value
                + b"]}}}"
            ),
        )
        yield (
            f"label {value!r}",
            b'{"name": "gw", "instance_id": "x", "labels": {"k": ' + value + b"}}",
        )
    yield "NUL in a label key", b'{"name": "gw", "instance_id": "x", "labels": {"k\\u0000": "v"}}'
    yield (
        "too deep",
        b'{"name": "gw", "instance_id": "x", "metadata": {"x": '
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}}",
    )
    yield (
        "huge integer",
        b'{"name": "gw", "instance_id": "x", "metadata": {"n": ' + b"9" * 5000 + b"}}",
    )


BAD_INSTANCE_IDS = [
    "",
    "-leading-dash",
    ".leading-dot",
    "has space",
    "has/slash",
    "tab\there",
    "new\nline",
    "nul\u0000byte",
    "ünïcödé",
    "emoji-\U0001f600",
    "semi;colon",
    "a" * 256,
    "a" * 10_240,
]


def test_registration_refuses_bad_bodies_and_spends_nothing(org: Org) -> None:
    created = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
    ).json()
    failures = flush_failures(org.server)
    for label, content in registration_bodies():
        resp = raw_post(org, "/api/v1/gateways", content, created["token"])
        assert 400 <= resp.status_code < 500, (label, resp.status_code, resp.text[:200])
        assert resp.status_code in (400, 422), label
        assert resp.json()["detail"], label
    for instance_id in BAD_INSTANCE_IDS:
        resp = anonymous(org.server).post(
            "/api/v1/gateways",
            json={"name": "gw", "instance_id": instance_id},
            headers={"Authorization": f"Bearer {created['token']}"},
        )
        assert resp.status_code == 422, (instance_id[:30], resp.text)
        assert "instance_id" in resp.json()["detail"]
    assert token_uses(org, created["id"]) == 0
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == 0
    # The token is still good for one real registration.
    gw = org.register("good-instance-1.example:a@b", token=created["token"])
    assert gw["instance_id"] == "good-instance-1.example:a@b"
    assert flush_failures(org.server) == failures


def test_unusual_but_valid_instance_ids_work_end_to_end(org: Org) -> None:
    for instance_id in ("a", "A" * 255, "gw_1.prod-eu:9090@rack-7", "0"):
        gw = org.register(instance_id)
        assert org.heartbeat(gw).status_code == 200
        cfg = anonymous(org.server).get(
            f"/api/v1/opamp/config/{instance_id}",
            headers={"Authorization": f"Bearer {gw['opamp_token']}"},
        )
        assert cfg.status_code == 200, (instance_id[:20], cfg.text)


def heartbeat_bodies() -> Iterator[tuple[str, bytes]]:
    yield "malformed", b'{"version": '
    yield "not an object", b"[1, 2]"
    yield "string", b'"ok"'
    yield "binary", b"\xff\xfe"
    yield "version wrong type", b'{"version": 5}'
    yield "version too long", b'{"version": "' + b"v" * 101 + b'"}'
    yield "negative config version", b'{"config_version": -1}'
    yield "config version beyond 32 bits", b'{"config_version": 2147483648}'
    yield "config version float", b'{"config_version": 1.5}'
    yield "negative latency", b'{"metrics": {"latency_ms": -1}}'
    yield "errors wrong type", b'{"metrics": {"errors": "many"}}'
    yield "metrics not an object", b'{"metrics": 5}'
    yield "unknown config status", b'{"config_status": {"status": "exploded"}}'
    for value in UNSTORABLE:
        yield f"version {value!r}", b'{"version": ' + value + b"}"
        yield f"latency {value!r}", b'{"metrics": {"latency_ms": ' + value + b"}}"
        yield f"metric extra {value!r}", b'{"metrics": {"custom": {"x": [' + value + b"]}}}"
        yield (
            f"config error {value!r}",
            (b'{"config_status": {"status": "failed", "error_message": ' + value + b"}}"),
        )
    yield "too deep", b'{"metrics": {"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"


def test_heartbeat_refuses_bad_bodies_and_records_nothing(org: Org) -> None:
    gw = org.register(metadata={"version": "1.0.0"})
    failures = flush_failures(org.server)
    path = f"/api/v1/opamp/heartbeat/{gw['instance_id']}"
    for label, content in heartbeat_bodies():
        resp = raw_post(org, path, content, gw["opamp_token"])
        assert resp.status_code in (400, 422), (label, resp.status_code, resp.text[:200])
        assert resp.json()["detail"], label
    status = org.get(f"/api/v1/gateways/{gw['id']}/status").json()
    assert (status["status"], status["health"]["last_seen"]) == ("registered", None)
    assert status["version"]["agent_version"] == "1.0.0"
    assert status["metrics"]["last_updated"] is None
    # The gateway still works, and what it reports next is stored and shown.
    ok = org.heartbeat(gw, {"version": "2.0.0", "config_version": 2147483647})
    assert ok.status_code == 200, ok.text
    wait_for(
        lambda: org.get(f"/api/v1/gateways/{gw['id']}/version").json()["agent_version"] == "2.0.0"
    )
    assert flush_failures(org.server) == failures


def management_bodies(org: Org) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of management calls with invalid bodies."""
    gid = org.register()["id"]
    calls: list[tuple[str, str, bytes]] = []
    for value in UNSTORABLE:
        calls += [
            ("POST", "/api/v1/registration-tokens", b'{"name": ' + value + b"}"),
            ("POST", "/api/v1/api-keys", b'{"name": ' + value + b"}"),
            ("POST", "/api/v1/users", b'{"email": "a@b.c", "password": ' + value + b"}"),
            ("PATCH", f"/api/v1/gateways/{gid}", b'{"labels": {"k": ' + value + b"}}"),
            ("PUT", f"/api/v1/gateways/{gid}/remote-config", b'{"config_yaml": ' + value + b"}"),
        ]
    for content in (b"{", b"[]", b'"x"', b"\xff", b"null"):
        for path in ("/api/v1/registration-tokens", "/api/v1/api-keys", "/api/v1/users"):
            calls.append(("POST", path, content))
        calls.append(("PATCH", f"/api/v1/gateways/{gid}", content))
        calls.append(("PUT", f"/api/v1/gateways/{gid}/remote-config", content))
    calls += [
        ("POST", "/api/v1/users", b'{"email": "a\\u0000@b.c", "password": "password-123"}'),
        ("POST", "/api/v1/users", b'{"email": "not-an-email", "password": "password-123"}'),
        ("POST", "/api/v1/users", b'{"email": "a@b.c", "password": "short"}'),
        (
            "POST",
            "/api/v1/users",
            b'{"email": "a@b.c", "password": "password-123", "role": "root"}',
        ),
        ("POST", "/api/v1/api-keys", b'{"name": "k", "role": "superuser"}'),
        ("POST", "/api/v1/api-keys", b'{"name": ""}'),
        ("POST", "/api/v1/registration-tokens", b'{"name": "t", "expires_in_days": "soon"}'),
        ("POST", "/api/v1/registration-tokens", b'{"name": "t", "max_uses": 1e400}'),
    ]
    return calls


def test_management_endpoints_refuse_bad_bodies_and_change_nothing(org: Org) -> None:
    calls = management_bodies(org)
    before = {
        p: org.get(p).json()
        for p in ("/api/v1/registration-tokens", "/api/v1/users", "/api/v1/api-keys")
    }
    gateways_before = org.get("/api/v1/gateways").json()["items"]
    for method, path, content in calls:
        resp = org.admin.request(
            method, path, params={"org_id": org.id}, content=content, headers=JSON
        )
        assert resp.status_code in (400, 422), (method, path, content[:60], resp.text[:200])
        assert resp.json()["detail"]
    after = {p: org.get(p).json() for p in before}
    assert after == before
    assert org.get("/api/v1/gateways").json()["items"] == gateways_before
    gid = gateways_before[0]["id"]
    assert org.get(f"/api/v1/gateways/{gid}/config").json()["source"] == "base"


def test_login_refuses_bad_bodies(org: Org) -> None:
    for content in (
        b"{",
        b"[]",
        b'{"email": "admin@example.com"}',
        b'{"email": 1, "password": 2}',
        b'{"email": "admin@example.com\\u0000", "password": "x"}',
        b'{"email": "admin@example.com", "password": "\\ud800"}',
        b'{"email": "' + b"a" * 321 + b'", "password": "x"}',
        b'{"email": "a@b.c", "password": "' + b"p" * 1025 + b'"}',
    ):
        resp = raw_post(org, "/api/v1/auth/login", content)
        assert resp.status_code in (400, 422), (content[:60], resp.text)
    for email, password in (("nobody@example.com", "whatever-123"), ("admin@example.com", "no")):
        resp = anonymous(org.server).post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert (resp.status_code, resp.json()) == (401, {"detail": "Incorrect email or password"})


def oversized(extra: int = 1) -> bytes:
    filler = b"a" * (MIB + extra)
    return b'{"name": "' + filler + b'"}'


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_one_mib_are_413(org: Org, chunked: bool) -> None:
    gw = org.register()
    token = org.registration_token()
    data = oversized()
    targets: list[tuple[str, str, dict[str, str]]] = [
        ("POST", "/api/v1/gateways", {"Authorization": f"Bearer {token}"}),
        (
            "POST",
            f"/api/v1/opamp/heartbeat/{gw['instance_id']}",
            {"Authorization": f"Bearer {gw['opamp_token']}"},
        ),
        ("POST", "/api/v1/auth/login", {}),
        ("POST", "/api/v1/registration-tokens", dict(org.admin.headers)),
        ("PUT", f"/api/v1/gateways/{gw['id']}/remote-config", dict(org.admin.headers)),
        ("PATCH", f"/api/v1/gateways/{gw['id']}", dict(org.admin.headers)),
    ]
    for method, path, headers in targets:
        content: Any = chunks(data) if chunked else data
        resp = anonymous(org.server).request(
            method,
            path,
            params={"org_id": org.id},
            content=content,
            headers={**headers, **JSON},
        )
        assert (resp.status_code, resp.json()) == (
            413,
            {"detail": "Request body too large"},
        ), (method, path)
    items = org.get("/api/v1/gateways").json()["items"]
    assert [(g["id"], g["name"], g["status"]) for g in items] == [(gw["id"], "gw", "registered")]
    assert len(org.get("/api/v1/registration-tokens").json()) == 2
    # A body just under the limit is read (and then judged on its content).
    near = b'{"name": "' + b"a" * (MIB - 100) + b'"}'
    resp = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, content=near, headers=JSON
    )
    assert resp.status_code == 422, resp.text[:200]


def test_unknown_ids_are_404(org: Org) -> None:
    p = {"org_id": org.id}
    missing = uuid.uuid4()
    for method, path, body, detail in (
        ("DELETE", f"/api/v1/registration-tokens/{missing}", None, "Registration token not found"),
        ("DELETE", f"/api/v1/api-keys/{missing}", None, "API key not found"),
        ("DELETE", f"/api/v1/users/{missing}", None, "User not found"),
        ("PATCH", f"/api/v1/users/{missing}", {"role": "viewer"}, "User not found"),
        ("GET", f"/api/v1/gateways/{missing}/metrics", None, "Gateway not found"),
    ):
        resp = org.admin.request(method, path, params=p, json=body)
        assert (resp.status_code, resp.json()) == (404, {"detail": detail}), path
    resp = org.admin.get("/api/v1/gateways", params={"org_id": str(uuid.uuid4())})
    assert (resp.status_code, resp.json()) == (404, {"detail": "Organization not found"})
    for bad in ("nope", "1234", ""):
        resp = org.admin.get("/api/v1/gateways", params={"org_id": bad})
        assert resp.status_code == 422, bad


# -- JSON that would be stored: bounded in depth, size and keys (flowgate.core.jsonsafe) -------


def deep_object(depth: int, leaf: bytes = b"{}") -> bytes:
    """JSON text of objects nested ``depth`` deep, ``{"a": {"a": ...}}``, built as text: the
    test's own encoder would overflow the stack long before the server's would."""
    return b'{"a": ' * (depth - 1) + leaf + b"}" * (depth - 1)


def assert_fleet_readable(org: Org, *gateways: dict[str, Any]) -> None:
    listing = org.get("/api/v1/gateways")
    assert listing.status_code == 200, listing.text[:300]
    for gw in gateways:
        for suffix in ("", "/status", "/metrics", "/version", "/config"):
            resp = org.get(f"/api/v1/gateways/{gw['id']}{suffix}")
            assert resp.status_code == 200, (suffix, resp.text[:300])


def test_heartbeat_metrics_nested_940_deep_is_422_and_the_fleet_stays_readable(org: Org) -> None:
    """The reported defect: accepted with 200, then every list of the organisation was a 500
    on SQLite (RecursionError decoding the stored JSON) until the database was edited."""
    gw = org.register()
    failures = flush_failures(org.server)
    path = f"/api/v1/opamp/heartbeat/{gw['instance_id']}"
    resp = raw_post(org, path, b'{"metrics": ' + deep_object(940) + b"}", gw["opamp_token"])
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["detail"].startswith(
        "metrics: nested deeper than 32 levels at metrics.a.a.a"
    )
    wait_flushed(org)
    assert fetch_row(org.server, "gateways", gw["id"], "last_seen") == (None,)
    assert_fleet_readable(org, gw)
    # 32 levels is the limit, not a step past it: stored, and everything still reads.
    ok = raw_post(org, path, b'{"metrics": ' + deep_object(32, b"{}") + b"}", gw["opamp_token"])
    assert ok.status_code == 200, ok.text[:300]
    wait_flushed(org)
    (stored,) = fetch_row(org.server, "gateways", gw["id"], "extra_metadata")
    assert '"a"' in str(stored)
    assert_fleet_readable(org, gw)
    assert org.heartbeat(gw).status_code == 200
    assert (
        org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}).status_code
        == 204
    )
    assert flush_failures(org.server) == failures


def test_registration_metadata_nested_950_deep_is_422_not_500(org: Org) -> None:
    created = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
    ).json()
    body = b'{"name": "gw", "instance_id": "deep-1", "metadata": ' + deep_object(950) + b"}"
    resp = raw_post(org, "/api/v1/gateways", body, created["token"])
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["detail"].startswith(
        "metadata: nested deeper than 32 levels at metadata.a.a.a"
    )
    assert token_uses(org, created["id"]) == 0
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == 0


def big(n: int) -> bytes:
    return b'"' + b"x" * n + b'"'


# (label, JSON text of the value, what the 422 must say)
UNSAFE_VALUES = [
    ("41 levels of arrays", b"[" * 41 + b"]" * 41, "nested deeper than 32 levels"),
    ("33 levels of objects", deep_object(33), "nested deeper than 32 levels"),
    (
        "257 keys",
        b"{" + b",".join(b'"k%d": 1' % i for i in range(257)) + b"}",
        "more than 256 keys in one object",
    ),
    (
        "2100 keys in all",
        b"{"
        + b",".join(
            b'"o%d": {%s}' % (j, b",".join(b'"k%d": 1' % i for i in range(210))) for j in range(10)
        )
        + b"}",
        "more than 2048 keys in all",
    ),
    ("over 64 KiB", b'{"a": [' + b",".join([big(10_000)] * 7) + b"]}", "larger than 64 KiB"),
    ("a 20000-character text", b'{"a": ' + big(20_000) + b"}", "text longer than 16384"),
    ("a 300-character key", b'{"' + b"k" * 300 + b'": 1}', "key longer than 256"),
    ("an integer past 64 bits", b'{"a": 18446744073709551616}', "integers must fit in 64 bits"),
    ("NaN", b'{"a": NaN}', "numbers must be finite"),
    ("Infinity", b'{"a": [Infinity]}', "numbers must be finite"),
    ("a lone surrogate", b'{"a": "\\udc00"}', "unpaired surrogate"),
    ("U+0000", b'{"a\\u0000": "b"}', "U+0000"),
]


def stored_json_calls(org: Org, value: bytes) -> list[tuple[str, str, bytes, str, dict[str, str]]]:
    """(method, path, body, field named in the 422, headers) for every JSON a client stores."""
    gw = org.register(labels={"keep": "me"}, metadata={"version": "1.0.0"})
    org.heartbeat(gw, {"metrics": {"logs_processed": 7}})
    token = org.registration_token()
    agent = {"Authorization": f"Bearer {gw['opamp_token']}"}
    enrol = {"Authorization": f"Bearer {token}"}
    hb = f"/api/v1/opamp/heartbeat/{gw['instance_id']}"
    return [
        ("POST", hb, b'{"metrics": ' + value + b"}", "metrics", agent),
        ("POST", hb, b'{"config_status": ' + value + b"}", "config_status", agent),
        (
            "POST",
            "/api/v1/gateways",
            b'{"name": "n", "instance_id": "new-1", "metadata": ' + value + b"}",
            "metadata",
            enrol,
        ),
        (
            "POST",
            "/api/v1/gateways",
            b'{"name": "n", "instance_id": "new-1", "labels": ' + value + b"}",
            "labels",
            enrol,
        ),
        (
            "PATCH",
            f"/api/v1/gateways/{gw['id']}",
            b'{"labels": ' + value + b"}",
            "labels",
            dict(org.admin.headers),
        ),
    ]


@pytest.mark.parametrize(
    ("label", "value", "message"), UNSAFE_VALUES, ids=[v[0] for v in UNSAFE_VALUES]
)
def test_json_over_the_limits_is_422_naming_the_field_and_nothing_is_stored(
    org: Org, label: str, value: bytes, message: str
) -> None:
    calls = stored_json_calls(org, value)
    wait_flushed(org)
    before = org.get("/api/v1/gateways").json()["items"]
    (gid,) = [g["id"] for g in before if g["name"] == "gw"]
    stored_before = fetch_row(org.server, "gateways", gid, "extra_metadata", "labels")
    failures = flush_failures(org.server)
    for method, path, body, field, headers in calls:
        resp = anonymous(org.server).request(
            method, path, params={"org_id": org.id}, content=body, headers={**headers, **JSON}
        )
        assert resp.status_code == 422, (label, path, field, resp.status_code, resp.text[:300])
        detail = resp.json()["detail"]
        assert message in detail, (label, field, detail)
        assert detail.startswith(f"{field}: ") or f" at {field}." in detail, detail
    wait_flushed(org)
    after = org.get("/api/v1/gateways").json()["items"]
    assert [g["id"] for g in after if g["name"] != "zz-flush-barrier"] == [
        g["id"] for g in before if g["name"] != "zz-flush-barrier"
    ]
    assert fetch_row(org.server, "gateways", gid, "extra_metadata", "labels") == stored_before
    assert flush_failures(org.server) == failures


def test_large_but_valid_values_are_stored_and_served(org: Org) -> None:
    metrics = {
        "logs_processed": 5,
        "blob": ["y" * 16_000] * 3,
        "nested": {f"k{i}": i for i in range(250)},
    }
    gw = org.register(
        metadata={"version": "1.0", "extra": {f"k{i}": "v" * 200 for i in range(250)}}
    )
    assert org.heartbeat(gw, {"metrics": metrics}).status_code == 200
    wait_flushed(org)
    assert_fleet_readable(org, gw)
    assert org.get(f"/api/v1/gateways/{gw['id']}/metrics").json()["logs_processed"] == 5


def test_registration_metadata_cannot_grow_without_bound(org: Org) -> None:
    """Each registration adds its metadata keys to what earlier ones stored; the sum is
    bounded too (1 MiB), so re-registering in a loop cannot build a giant row."""
    token = org.registration_token(max_uses=None)
    statuses = []
    for round_ in range(20):
        extra = {f"r{round_}k{i}": "z" * 15_000 for i in range(4)}
        resp = anonymous(org.server).post(
            "/api/v1/gateways",
            json={"name": "gw", "instance_id": "grower", "metadata": extra},
            headers={"Authorization": f"Bearer {token}"},
        )
        statuses.append(resp.status_code)
        if resp.status_code == 422:
            assert resp.json()["detail"].startswith("metadata: larger than 1 MiB as JSON"), (
                resp.text
            )
            break
    assert statuses[:-1] == [201] + [200] * (len(statuses) - 2)
    assert statuses[-1] == 422
    (gw,) = org.get("/api/v1/gateways").json()["items"]
    (stored,) = fetch_row(org.server, "gateways", gw["id"], "extra_metadata")
    assert len(stored if isinstance(stored, str) else json.dumps(stored)) < 1024 * 1024
    assert_fleet_readable(org, gw)


# -- OpAMP reports are bounded the same way: BAD_REQUEST, and nothing is stored ----------------

BAD_REQUEST = opamp_pb2.ServerErrorResponseType_BadRequest


def deep_attribute(agent: WsAgent, depth: int) -> opamp_pb2.AgentToServer:
    msg = agent.full_state()
    node = msg.agent_description.non_identifying_attributes.add(key="deep").value
    for _ in range(depth):
        node = node.array_value.values.add()
    return msg


def deep_health(agent: WsAgent, depth: int) -> opamp_pb2.AgentToServer:
    msg = agent.full_state()
    node = msg.health
    for level in range(depth):
        node = node.component_health_map[f"c{level}"]
        node.healthy = True
    return msg


def nul_attribute(agent: WsAgent) -> opamp_pb2.AgentToServer:
    msg = agent.full_state()
    msg.agent_description.identifying_attributes.add(
        key="os.description"
    ).value.string_value = "linux\x00"
    return msg


def flushed_opamp_state(org: Org, gw: dict[str, Any]) -> Any:
    wait_flushed(org)
    (state,) = fetch_row(org.server, "gateways", gw["id"], "opamp_state")
    return state


HOSTILE_REPORTS = [
    (
        "attributes 40 deep",
        lambda a: deep_attribute(a, 40),
        "agent_description.non_identifying_attributes: nested deeper than 32 levels at "
        "agent_description.non_identifying_attributes.deep[0][0]",
    ),
    (
        "component health 20 deep",
        lambda a: deep_health(a, 20),
        "health: nested deeper than 32 levels at health.components.c0.components.c1",
    ),
    (
        "U+0000 in an attribute",
        nul_attribute,
        "agent_description.identifying_attributes: text must not contain U+0000",
    ),
]


@pytest.mark.parametrize(
    ("label", "build", "message"), HOSTILE_REPORTS, ids=[r[0] for r in HOSTILE_REPORTS]
)
async def test_opamp_report_that_cannot_be_stored_is_a_bad_request_and_nothing_is_stored(
    org: Org, label: str, build: Any, message: str
) -> None:
    gw = org.register()
    failures = flush_failures(org.server)
    agent = await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
    try:
        reply = await agent.request(build(agent))
        assert reply.error_response.type == BAD_REQUEST, (label, reply)
        assert reply.error_response.error_message.startswith(message), (
            reply.error_response.error_message
        )
        # In a thread: the PostgreSQL helpers run an event loop of their own.
        assert await asyncio.to_thread(flushed_opamp_state, org, gw) is None
        assert_fleet_readable(org, gw)
        assert org.get(f"/api/v1/gateways/{gw['id']}/status").json()["agent"] is None
        # The connection survives, and a report that can be stored is stored.
        ok = await agent.request(agent.full_state())
        assert not ok.HasField("error_response"), ok
    finally:
        await agent.close()
    assert await asyncio.to_thread(flushed_opamp_state, org, gw) is not None
    status = org.get(f"/api/v1/gateways/{gw['id']}/status").json()
    assert status["agent"]["non_identifying_attributes"]["host.name"] == "ws-agent"
    assert flush_failures(org.server) == failures


def test_opamp_http_report_that_cannot_be_stored_is_a_bad_request(org: Org) -> None:
    gw = org.register()
    agent = WsAgent("unused", gw["opamp_token"])
    resp = httpx.post(
        org.server.url + "/v1/opamp",
        content=deep_health(agent, 20).SerializeToString(),
        headers={
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Bearer {gw['opamp_token']}",
        },
        timeout=30,
    )
    assert resp.status_code == 200
    reply = opamp_pb2.ServerToAgent.FromString(resp.content)
    assert reply.error_response.type == BAD_REQUEST
    assert reply.error_response.error_message.startswith("health: nested deeper than 32 levels")
    assert flushed_opamp_state(org, gw) is None
    assert_fleet_readable(org, gw)


async def test_opamp_enrolment_with_a_report_that_cannot_be_stored_enrols_nothing(
    org: Org,
) -> None:
    created = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
    ).json()
    agent = await WsAgent(org.server.ws_url + "/v1/opamp", created["token"]).connect()
    try:
        reply = await agent.request(deep_attribute(agent, 40))
        assert reply.error_response.type == BAD_REQUEST, reply
    finally:
        await agent.close()
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == 0
    assert await asyncio.to_thread(token_uses, org, created["id"]) == 0


def test_a_body_too_deep_to_parse_is_422_with_the_reason(org: Org) -> None:
    created = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
    ).json()
    body = b'{"name": "gw", "instance_id": "deeper", "metadata": ' + deep_object(5000) + b"}"
    resp = raw_post(org, "/api/v1/gateways", body, created["token"])
    assert resp.status_code == 422, resp.text[:300]
    assert "nested too deeply" in resp.json()["detail"]
    assert token_uses(org, created["id"]) == 0
