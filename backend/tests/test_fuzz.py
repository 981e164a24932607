"""Property-based fuzzing of the HTTP API: random JSON bodies (also NaN, Infinity, huge numbers,
NUL and lone surrogates), raw bytes, path segments, query strings and credentials. No input may
produce a 5xx, and the server must still be healthy afterwards."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import Org, anonymous
from tests.support.db import wait_flushed
from tests.support.polling import wait_for
from tests.support.server import LiveServer

EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies --------------------------------------------------------------------------------

any_char = st.characters(codec=None, exclude_categories=())  # includes NUL and lone surrogates
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=any_char, max_size=20),
    st.sampled_from(["", " ", "\u0000", "\ud800", "a" * 300, "gw-1", "%", "_", "../..", "null"]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 2**31, 2**63, 10**30, 1e308, -0.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``other`` (``one_of`` would weigh them equally)."""
    return st.integers(0, 3).flatmap(lambda i: other if i == 0 else usual)


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value for a field, sometimes anything at all."""
    return mostly(plausible, json_values)


def text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Text of a plausible length, half the time from all of Unicode (NUL, lone surrogates)."""
    return st.one_of(
        st.text(min_size=min_size, max_size=max_size),
        st.text(alphabet=any_char, min_size=min_size, max_size=max_size),
    )


valid_instance_id = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@-]{0,30}\Z")
instance_ids = mostly(valid_instance_id, texts)
registration_body = st.fixed_dictionaries(
    {"name": field(text(1, 30)), "instance_id": instance_ids},
    optional={
        "hostname": field(text(0, 30)),
        "ip_address": field(st.ip_addresses().map(str)),
        "labels": field(st.dictionaries(text(0, 10), text(0, 10), max_size=3)),
        "metadata": field(
            st.fixed_dictionaries(
                {},
                optional={
                    "version": field(text(0, 10)),
                    "otel_version": field(text(0, 10)),
                    "capabilities": field(st.lists(text(0, 10), max_size=3)),
                    "extra": json_values,
                },
            )
        ),
    },
)
heartbeat_body = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "version": field(text(0, 10)),
            "otel_version": field(text(0, 10)),
            "config_version": field(st.integers(min_value=-5, max_value=2**40)),
            "metrics": field(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "logs_processed": field(numbers),
                        "errors": field(numbers),
                        "latency_ms": field(numbers),
                        "custom": json_values,
                    },
                )
            ),
            "config_status": field(
                st.fixed_dictionaries(
                    {"status": field(st.sampled_from(["applied", "applying", "failed"]))},
                    optional={"error_message": field(texts), "config_version": field(numbers)},
                )
            ),
        },
    ),
)
login_body = st.fixed_dictionaries(
    {}, optional={"email": field(st.emails()), "password": field(text(0, 20))}
)
collector_yaml = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                ["receivers", "exporters", "processors", "service", "pipelines", "traces", "otlp"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
).map(lambda doc: yaml.safe_dump(doc))
config_body = st.fixed_dictionaries(
    {},
    optional={
        "config_yaml": field(st.one_of(collector_yaml, st.text(alphabet=any_char, max_size=60))),
        "content_type": field(st.sampled_from(["text/yaml", "application/json", "text/plain"])),
    },
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),  # NaN/Infinity as Python writes them
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"[" * 5000, b'{"a":' + b"1" * 5000 + b"}", b"\xef\xbb\xbf{}"]),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
authorizations = st.one_of(
    st.none(),
    st.one_of(
        header_text,
        header_text.map(lambda t: f"Bearer {t}"),
        st.sampled_from(["Bearer", "Bearer fgk_", "Basic Zm9vOmJhcg==", "Bearer a.b.c"]),
    ).map(str.strip),  # HTTP itself forbids surrounding whitespace in a header value
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ]
)


def segment_of(text: str) -> str:
    """Percent-encode any text as one path segment (lone surrogates become invalid UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()  # allow_nan: NaN and Infinity go out as-is


def check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (
        resp.request.method,
        str(resp.request.url)[:200],
        resp.text[:300],
    )
    if 400 <= resp.status_code < 500 and resp.status_code != 405:
        assert "detail" in resp.json(), resp.text[:200]


def unhandled_errors(server: LiveServer) -> int:
    return server.full_log().count('"unhandled error"')


def flush_failures(server: LiveServer) -> list[str]:
    text = anonymous(server).get("/metrics").text
    return re.findall(r"^flowgate_presence_flush_failures_total (\S+)$", text, re.M)


@pytest.fixture
def watch(org: Org) -> Any:
    """After a fuzz run: no unhandled error was logged, everything accepted was written to the
    database (no failed heartbeat flush), the server is ready."""
    server = org.server
    before, failures = unhandled_errors(server), flush_failures(server)
    yield
    wait_flushed(org)
    assert unhandled_errors(server) == before, server.logs()[-3000:]
    assert flush_failures(server) == failures
    assert anonymous(server).get("/readyz").status_code == 200


# -- public endpoints --------------------------------------------------------------------------


def test_fuzz_registration(org: Org, watch: Any) -> None:
    token = org.registration_token(max_uses=None)
    http = anonymous(org.server)

    @FUZZ
    @given(body=st.one_of(registration_body.map(encode), bodies), ctype=content_types)
    def run(body: bytes, ctype: str) -> None:
        resp = http.post(
            "/api/v1/gateways",
            content=body,
            headers={"Authorization": f"Bearer {token}", "content-type": ctype},
        )
        check(resp)
        if resp.status_code in (200, 201):
            assert resp.json()["opamp_token"]

    run()


def test_fuzz_registration_credentials(org: Org, watch: Any) -> None:
    http = anonymous(org.server)

    @FUZZ
    @given(authorization=authorizations, body=registration_body)
    def run(authorization: str | None, body: Any) -> None:
        headers = {"Authorization": authorization} if authorization is not None else {}
        resp = http.post(
            "/api/v1/gateways",
            content=encode(body),
            headers={**headers, "content-type": "application/json"},
        )
        check(resp)
        assert resp.status_code in (401, 422), resp.text

    run()
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == 0


def test_fuzz_heartbeat_and_config(org: Org, watch: Any) -> None:
    gw = org.register()
    http = anonymous(org.server)
    auth = {"Authorization": f"Bearer {gw['opamp_token']}"}

    @FUZZ
    @given(body=st.one_of(heartbeat_body.map(encode), bodies), ctype=content_types)
    def heartbeat(body: bytes, ctype: str) -> None:
        resp = http.post(
            f"/api/v1/opamp/heartbeat/{gw['instance_id']}",
            content=body,
            headers={**auth, "content-type": ctype},
        )
        check(resp)
        if resp.status_code == 200:
            assert resp.json() == {"status": "ok", "gateway_id": gw["id"]}
        # Whatever was accepted, every view of the gateway still renders.
        for part in ("status", "version", "metrics", "config"):
            check(org.get(f"/api/v1/gateways/{gw['id']}/{part}"))

    heartbeat()

    @FUZZ
    @given(instance_id=instance_ids, authorization=authorizations, own_token=st.booleans())
    def paths_and_credentials(instance_id: str, authorization: str | None, own_token: bool) -> None:
        headers = {"Authorization": authorization} if authorization is not None else {}
        if own_token:
            headers = auth
        segment = segment_of(instance_id)
        for method, kind in (("POST", "heartbeat"), ("GET", "config")):
            resp = http.request(method, f"/api/v1/opamp/{kind}/{segment}", headers=headers)
            check(resp)

    paths_and_credentials()
    check(org.heartbeat(gw, {"version": "still-fine"}))
    wait_for(  # heartbeats reach the API with the next presence flush
        lambda: (
            org.get(f"/api/v1/gateways/{gw['id']}/version").json()["agent_version"] == "still-fine"
        )
    )


def test_fuzz_login(org: Org, watch: Any) -> None:
    http = anonymous(org.server)

    @settings(FUZZ, max_examples=60)  # each sign-in attempt costs a password hash
    @given(body=st.one_of(login_body.map(encode), bodies))
    def run(body: bytes) -> None:
        resp = http.post(
            "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
        )
        check(resp)
        assert resp.status_code != 200

    run()


# -- management endpoints, with a valid credential ---------------------------------------------


def test_fuzz_gateway_list_queries(org: Org, watch: Any) -> None:
    for name in ("alpha", "beta", "50%"):
        org.register(name=name)
    query_values = st.one_of(texts, st.integers().map(str), st.sampled_from(["active", "healthy"]))

    @FUZZ
    @given(
        params=st.dictionaries(
            st.sampled_from(["status", "health", "name", "limit", "cursor", "org_id"]),
            query_values,
            max_size=4,
        )
    )
    def run(params: dict[str, str]) -> None:
        params = {k: v.replace("\ud800", "") for k, v in params.items()}
        params = {k: v.encode("utf-8", "replace").decode() for k, v in params.items()}
        params.setdefault("org_id", org.id)
        check(org.admin.get("/api/v1/gateways", params=params))

    run()


def test_fuzz_management_bodies(org: Org, watch: Any) -> None:
    gw = org.register()
    p = {"org_id": org.id}
    token_body = st.fixed_dictionaries(
        {},
        optional={
            "name": field(text(1, 20)),
            "expires_in_days": field(st.integers(-5, 4000)),
            "max_uses": field(st.one_of(st.none(), st.integers(-5, 2_000_000))),
        },
    )
    user_body = st.fixed_dictionaries(
        {},
        optional={
            "email": field(st.emails()),
            "password": field(text(0, 20)),
            "role": field(st.sampled_from(["viewer", "operator", "admin", "root"])),
        },
    )
    key_body = st.fixed_dictionaries(
        {},
        optional={
            "name": field(text(0, 20)),
            "role": field(st.sampled_from(["viewer", "x"])),
        },
    )
    patch_body = st.fixed_dictionaries(
        {},
        optional={
            "name": field(text(1, 20)),
            "labels": field(st.dictionaries(text(0, 8), text(0, 8), max_size=3)),
        },
    )
    calls = st.one_of(
        st.tuples(st.just("POST"), st.just("/api/v1/registration-tokens"), token_body.map(encode)),
        st.tuples(st.just("POST"), st.just("/api/v1/users"), user_body.map(encode)),
        st.tuples(st.just("POST"), st.just("/api/v1/api-keys"), key_body.map(encode)),
        st.tuples(
            st.just("PATCH"), st.just(f"/api/v1/gateways/{gw['id']}"), patch_body.map(encode)
        ),
        st.tuples(
            st.just("PUT"),
            st.just(f"/api/v1/gateways/{gw['id']}/remote-config"),
            config_body.map(encode),
        ),
        st.tuples(
            st.sampled_from(["POST", "PATCH", "PUT"]),
            st.sampled_from(
                [
                    "/api/v1/registration-tokens",
                    "/api/v1/users",
                    "/api/v1/api-keys",
                    "/api/v1/orgs",
                    f"/api/v1/gateways/{gw['id']}",
                    f"/api/v1/gateways/{gw['id']}/remote-config",
                ]
            ),
            bodies,
        ),
    )

    @FUZZ
    @given(call=calls)
    def run(call: tuple[str, str, bytes]) -> None:
        method, path, body = call
        resp = org.admin.request(
            method, path, params=p, content=body, headers={"content-type": "application/json"}
        )
        check(resp)

    run()

    @FUZZ
    @given(
        segment=texts, suffix=st.sampled_from(["", "/health", "/status", "/config", "/deactivate"])
    )
    def ids(segment: str, suffix: str) -> None:
        path = f"/api/v1/gateways/{segment_of(segment)}{suffix}"
        method = "POST" if suffix == "/deactivate" else "GET"
        check(org.admin.request(method, path, params=p))
        for kind in ("users", "api-keys", "registration-tokens"):
            check(org.admin.delete(f"/api/v1/{kind}/{segment_of(segment)}", params=p))

    ids()
    # The fleet still reads back cleanly after everything that was accepted.
    page = org.get("/api/v1/gateways")
    assert page.status_code == 200
    assert org.get(f"/api/v1/gateways/{gw['id']}/status").status_code == 200
