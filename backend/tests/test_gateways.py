"""The gateway API beyond registration: what heartbeats report, the fleet list (keyset pages,
filters, summary), renaming, deactivation, deletion and remote configuration."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.support.api import Org, anonymous
from tests.support.db import fetch_row, wait_flushed
from tests.support.polling import wait_for

CONFIG = """receivers:
  otlp:
    protocols:
      grpc: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""


def agent_config(org: Org, gw: dict[str, Any]) -> dict[str, Any]:
    resp = anonymous(org.server).get(
        f"/api/v1/opamp/config/{gw['instance_id']}",
        headers={"Authorization": f"Bearer {gw['opamp_token']}"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def push(org: Org, gw: dict[str, Any], config_yaml: str) -> Any:
    return org.admin.put(
        f"/api/v1/gateways/{gw['id']}/remote-config",
        params={"org_id": org.id},
        json={"config_yaml": config_yaml},
    )


# -- what a heartbeat reports ------------------------------------------------------------------


def test_heartbeat_reports_version_metrics_and_applied_config(org: Org) -> None:
    gw = org.register(metadata={"version": "1.0.0", "capabilities": ["AcceptsRemoteConfig"]})
    body = {
        "version": "1.2.3",
        "otel_version": "0.99.0",
        "config_version": 7,
        "metrics": {"logs_processed": 1000, "errors": 2, "latency_ms": 50.5},
        "config_status": {"status": "applied", "config_version": 7},
    }
    hb = org.heartbeat(gw, body)
    assert hb.json() == {"status": "ok", "gateway_id": gw["id"]}
    # Reads come from the database: what a heartbeat reported shows after the next flush.
    wait_flushed(org)
    version = org.get(f"/api/v1/gateways/{gw['id']}/version").json()
    assert version == {
        "agent_version": "1.2.3",
        "otel_version": "0.99.0",
        "capabilities": ["AcceptsRemoteConfig"],
    }
    metrics = org.get(f"/api/v1/gateways/{gw['id']}/metrics").json()
    assert (metrics["logs_processed"], metrics["errors"], metrics["latency_ms"]) == (1000, 2, 50.5)
    assert metrics["last_updated"] is not None
    config = org.get(f"/api/v1/gateways/{gw['id']}/config").json()
    assert config["applied_config_version"] == 7
    assert config["remote_config_status"]["status"] == "applied"
    assert config["remote_config_status"]["config_version"] == 7
    status = org.get(f"/api/v1/gateways/{gw['id']}/status").json()
    assert status["version"] == version
    assert status["metrics"] == metrics
    assert status["config"]["applied_config_version"] == 7
    assert status["health"]["status"] == "healthy"
    assert status["health"]["uptime_seconds"] is not None
    (meta,) = fetch_row(org.server, "gateways", gw["id"], "extra_metadata")
    assert "1.2.3" in str(meta) and "0.99.0" in str(meta)
    listed = org.get("/api/v1/gateways", name=gw["name"]).json()["items"]
    assert [(g["agent_version"], g["current_config_version"]) for g in listed] == [("1.2.3", 7)]


def test_heartbeat_without_a_body_only_refreshes_contact(org: Org) -> None:
    gw = org.register(metadata={"version": "1.0.0"})
    assert org.heartbeat(gw).status_code == 200
    assert org.heartbeat(gw, None).status_code == 200
    assert org.get(f"/api/v1/gateways/{gw['id']}/version").json()["agent_version"] == "1.0.0"
    metrics = org.get(f"/api/v1/gateways/{gw['id']}/metrics").json()
    assert metrics == {
        "logs_processed": None,
        "errors": None,
        "latency_ms": None,
        "last_updated": None,
    }
    health = org.get(f"/api/v1/gateways/{gw['id']}/health").json()
    assert (health["status"], health["health_score"]) == ("healthy", 100)
    assert health["seconds_since_last_seen"] in (0, 1)


# -- the fleet list ----------------------------------------------------------------------------


def test_keyset_pages_walk_every_gateway_exactly_once(org: Org) -> None:
    names = ["alpha", "alpha", "alpha", "bravo", "charlie", "charlie", "delta"]
    ids = {org.register(name=n)["id"] for n in names}
    for limit in (1, 2, 3, 7):
        seen: list[tuple[str, str]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            resp = org.get("/api/v1/gateways", **params)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            assert len(page["items"]) <= limit
            assert page["summary"]["total"] == len(names)
            seen += [(g["name"], g["id"]) for g in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(i for _, i in seen) == sorted(ids), limit
        assert len(seen) == len(set(seen)) == len(names)
        assert [n for n, _ in seen] == sorted(names)
        assert pages == -(-len(names) // limit)  # ceil: a full last page says "no more"


def test_a_page_never_repeats_or_skips_when_names_tie(org: Org) -> None:
    ids = sorted(org.register(name="same")["id"] for _ in range(5))
    first = org.get("/api/v1/gateways", limit=2).json()
    second = org.get("/api/v1/gateways", limit=2, cursor=first["next_cursor"]).json()
    third = org.get("/api/v1/gateways", limit=2, cursor=second["next_cursor"]).json()
    walked = [g["id"] for page in (first, second, third) for g in page["items"]]
    assert sorted(walked) == ids and len(walked) == 5
    assert third["next_cursor"] is None


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "abc",
        "é",
        "%00",
        encoded([1]),
        encoded(["a", "not-a-uuid"]),
        encoded({"a": 1, "b": 2}),
        encoded("just a string"),
        encoded(["a\u0000", str(uuid.uuid4())]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_invalid_cursor_is_400(org: Org, cursor: str) -> None:
    org.register()
    resp = org.get("/api/v1/gateways", cursor=cursor)
    assert (resp.status_code, resp.json()) == (400, {"detail": "Invalid cursor"})


def test_oversized_cursor_and_bad_limits_are_422(org: Org) -> None:
    for params in ({"cursor": "a" * 2049}, {"limit": 0}, {"limit": 501}, {"limit": "ten"}):
        resp = org.get("/api/v1/gateways", **params)
        assert resp.status_code == 422, (params, resp.text)


def test_list_filters_by_status_health_and_name(org: Org) -> None:
    active = org.register(name="Edge-Berlin")
    registered = org.register(name="edge-paris")
    inactive = org.register(name="core-london")
    percent = org.register(name="50%-off")
    underscore = org.register(name="under_score")
    backslash = org.register(name="back\\slash")
    assert org.heartbeat(active).status_code == 200
    org.admin.post(f"/api/v1/gateways/{inactive['id']}/deactivate", params={"org_id": org.id})
    wait_for(lambda: org.get(f"/api/v1/gateways/{active['id']}").json()["status"] == "active")

    def names(**params: Any) -> set[str]:
        resp = org.get("/api/v1/gateways", **params)
        assert resp.status_code == 200, resp.text
        return {g["name"] for g in resp.json()["items"]}

    wait_for(lambda: names(status="active") == {"Edge-Berlin"})
    assert names(health="healthy") == {"Edge-Berlin"}
    assert names(status="inactive") == {"core-london"}
    assert names(health="offline") == {"core-london"}
    assert names(status="registered") == {"edge-paris", "50%-off", "under_score", "back\\slash"}
    assert names(status="error") == set()
    assert names(name="EDGE") == {"Edge-Berlin", "edge-paris"}  # substring, any case
    assert names(name="edge", status="registered") == {"edge-paris"}
    assert names(name="%") == {"50%-off"}  # LIKE wildcards are literal
    assert names(name="_") == {"under_score"}
    assert names(name="\\") == {"back\\slash"}
    assert names(name="nothing-like-this") == set()
    summary = org.get("/api/v1/gateways").json()["summary"]
    assert summary == {
        "total": 6,
        "by_status": {"registered": 4, "active": 1, "inactive": 1, "error": 0},
        "by_health": {"healthy": 1, "warning": 0, "unhealthy": 4, "offline": 1},
    }
    for bad in ({"status": "sleeping"}, {"name": "x" * 256}, {"name": "a\u0000b"}):
        assert org.get("/api/v1/gateways", **bad).status_code == 422, bad
    assert {percent["id"], underscore["id"], backslash["id"], registered["id"]} <= {
        g["id"] for g in org.get("/api/v1/gateways").json()["items"]
    }


def test_an_empty_org_lists_nothing(org: Org) -> None:
    page = org.get("/api/v1/gateways").json()
    assert page == {
        "items": [],
        "next_cursor": None,
        "summary": {
            "total": 0,
            "by_status": {"registered": 0, "active": 0, "inactive": 0, "error": 0},
            "by_health": {"healthy": 0, "warning": 0, "unhealthy": 0, "offline": 0},
        },
    }


# -- management --------------------------------------------------------------------------------


def test_rename_and_label(org: Org) -> None:
    gw = org.register(name="old", labels={"env": "dev"})
    item = org.get(f"/api/v1/gateways/{gw['id']}").json()
    assert (item["name"], item["labels"]) == ("old", {"env": "dev"})
    resp = org.admin.patch(
        f"/api/v1/gateways/{gw['id']}",
        params={"org_id": org.id},
        json={"name": "new", "labels": {"env": "prod", "region": "eu"}},
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["name"], resp.json()["labels"]) == ("new", {"env": "prod", "region": "eu"})
    listed = org.get("/api/v1/gateways").json()["items"]
    assert [(g["name"], g["labels"]) for g in listed] == [("new", {"env": "prod", "region": "eu"})]
    for bad in (
        {"name": ""},
        {"name": "x" * 256},
        {"labels": {"": "v"}},
        {"labels": {"k" * 64: "v"}},
        {"labels": {"k": "v" * 256}},
        {"labels": {"k": 1}},
        {"labels": {f"k{i}": "v" for i in range(201)}},
    ):
        resp = org.admin.patch(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}, json=bad)
        assert resp.status_code == 422, (bad, resp.text)
    assert org.get(f"/api/v1/gateways/{gw['id']}").json()["name"] == "new"


def test_deactivate_revokes_the_token_and_takes_the_gateway_offline(org: Org) -> None:
    gw = org.register()
    assert org.heartbeat(gw, {"version": "1.0.0"}).status_code == 200
    resp = org.admin.post(f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "inactive"
    assert resp.json()["health"] == {"status": "offline", "health_score": 0}
    refused = org.heartbeat(gw)
    assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid OpAMP token"})
    health = org.get(f"/api/v1/gateways/{gw['id']}/health").json()
    assert (health["status"], health["health_score"]) == ("offline", 0)
    assert org.get(f"/api/v1/gateways/{gw['id']}/status").json()["status"] == "inactive"
    # A registration token re-enrols it with a new OpAMP token.
    again = org.register(gw["instance_id"])
    assert (again["id"], again["status"]) == (gw["id"], "registered")
    assert org.heartbeat(again).status_code == 200
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active")


def test_deactivation_is_not_undone_by_a_buffered_heartbeat(org: Org) -> None:
    """A heartbeat being flushed while the gateway is deactivated must not bring it back.
    (A race: before the fix about one run in three of this loop left a gateway "active".)"""
    gateways = []
    for _ in range(30):
        gw = org.register()
        assert org.heartbeat(gw).status_code == 200
        resp = org.admin.post(f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id})
        assert resp.json()["status"] == "inactive"
        gateways.append(gw)
    wait_flushed(org)
    for gw in gateways:
        assert fetch_row(org.server, "gateways", gw["id"], "status", "opamp_token") == (
            "inactive",
            None,
        )
        assert org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "inactive"


def test_delete_removes_the_gateway(org: Org) -> None:
    gw = org.register()
    assert push(org, gw, CONFIG).status_code == 200
    keep = org.register()
    resp = org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id})
    assert (resp.status_code, resp.content) == (204, b"")
    for suffix in ("", "/health", "/status", "/config"):
        gone = org.get(f"/api/v1/gateways/{gw['id']}{suffix}")
        assert (gone.status_code, gone.json()) == (404, {"detail": "Gateway not found"})
    again = org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id})
    assert again.status_code == 404
    assert org.heartbeat(gw).status_code == 401
    assert [g["id"] for g in org.get("/api/v1/gateways").json()["items"]] == [keep["id"]]


# -- remote configuration ----------------------------------------------------------------------


def test_remote_config_versions_and_delivery_over_rest(org: Org) -> None:
    gw = org.register()
    assert agent_config(org, gw)["source"] == "base"
    versions = []
    for n in range(3):
        text = CONFIG + f"# revision {n}\n"
        resp = push(org, gw, text)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["gateway_id"] == gw["id"]
        assert body["delivery"] == "queued"  # no live OpAMP connection
        versions.append(body["config_version"])
        delivered = agent_config(org, gw)
        assert delivered["source"] == "remote"
        assert delivered["config_yaml"] == text
        assert delivered["config_version"] == body["config_version"]
        assert delivered["config_hash"] == body["config_hash"]
        assert delivered["deployment_id"] is not None
    assert versions == [1, 2, 3]
    managed = org.get(f"/api/v1/gateways/{gw['id']}/config").json()
    assert (managed["source"], managed["config_version"]) == ("remote", 3)
    # The gateway reports what it applied; FlowGate shows it next to the desired version.
    assert org.heartbeat(gw, {"config_version": 3}).status_code == 200
    cfg = wait_for(lambda: (c := agent_config(org, gw))["applied_config_version"] == 3 and c)
    assert (cfg["config_version"], cfg["applied_config_version"]) == (3, 3)
    other = org.register()
    assert agent_config(org, other)["source"] == "base"


@pytest.mark.parametrize(
    ("config_yaml", "message"),
    [
        ("receivers: [unclosed", "not valid YAML"),
        ("just a string", "must be a YAML mapping"),
        ("receivers: {}\n", "missing section"),
        ("receivers: {a: {}}\nexporters: {b: {}}\nservice: {}\n", "pipeline"),
        (
            "receivers: {a: {}}\nexporters: {b: {}}\n"
            "service: {pipelines: {traces: {receivers: [nope], exporters: [b]}}}\n",
            "'nope', which is not defined",
        ),
        (
            "receivers: {a: {}}\nexporters: {b: {}}\n"
            "service: {pipelines: {traces: {receivers: 5, exporters: [b]}}}\n",
            "must be a list",
        ),
        (
            "receivers: {a: {}}\nexporters: {b: {}}\n"
            "service: {pipelines: {traces: {receivers: [{x: 1}], exporters: [b]}}}\n",
            "must be a list",
        ),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("when: 2001-13-45\n", "invalid value"),
    ],
)
def test_invalid_config_is_422_and_stores_nothing(org: Org, config_yaml: str, message: str) -> None:
    gw = org.register()
    assert push(org, gw, CONFIG).status_code == 200
    resp = push(org, gw, config_yaml)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail["errors"] and all(e["line"] >= 1 for e in detail["errors"]), detail
    assert message.lower() in str(detail).lower(), detail
    cfg = agent_config(org, gw)
    assert (cfg["config_version"], cfg["config_yaml"]) == (1, CONFIG)
    assert push(org, gw, CONFIG + "# next\n").json()["config_version"] == 2


def test_config_push_body_is_validated(org: Org) -> None:
    gw = org.register()
    for body in (
        {},
        {"config_yaml": ""},
        {"config_yaml": 5},
        {"config_yaml": "x" * (512 * 1024 + 1)},
    ):
        resp = org.admin.put(
            f"/api/v1/gateways/{gw['id']}/remote-config", params={"org_id": org.id}, json=body
        )
        assert resp.status_code == 422, (str(body)[:40], resp.text)
    assert agent_config(org, gw)["source"] == "base"


def test_concurrent_registrations_and_pushes_stay_consistent(org: Org) -> None:
    """Races on one instance_id and on one gateway's config: never a 5xx; one gateway; config
    versions without gaps or duplicates; exactly one OpAMP token (the last issued) works."""
    token = org.registration_token(max_uses=None)
    http = anonymous(org.server)

    def register(i: int) -> tuple[int, dict[str, Any]]:
        resp = http.post(
            "/api/v1/gateways",
            json={"name": f"racer-{i}", "instance_id": "racy"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(register, range(16)))
    codes = sorted(code for code, _ in results)
    assert set(codes) <= {200, 201, 409} and codes.count(201) == 1, codes
    items = org.get("/api/v1/gateways").json()["items"]
    assert len(items) == 1
    issued = [body for code, body in results if code in (200, 201)]
    assert {b["id"] for b in issued} == {items[0]["id"]}
    working = [b for b in issued if org.heartbeat({**b, "instance_id": "racy"}).status_code == 200]
    assert len(working) == 1

    gw = working[0]

    def push_one(i: int) -> tuple[int, int | None]:
        resp = push(org, gw, CONFIG + f"# {i}\n")
        return resp.status_code, resp.json().get("config_version")

    with ThreadPoolExecutor(8) as pool:
        pushed = list(pool.map(push_one, range(16)))
    assert {code for code, _ in pushed} <= {200, 409}
    versions = sorted(v for code, v in pushed if code == 200)
    assert versions == list(range(1, len(versions) + 1))
    assert agent_config(org, gw)["config_version"] == versions[-1]
