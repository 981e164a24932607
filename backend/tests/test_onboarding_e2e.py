"""The seed's operational procedure end to end (create token -> register -> heartbeat -> status
healthy/100 -> config), with the seed's exact response shapes, and the proof that no token or
password ever reaches the server log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api import Org, anonymous, client, login
from tests.support.polling import wait_for

SEED_CONFIG = """receivers:
  otlp:
    protocols:
      grpc: {}
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
"""


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_seed_operational_procedure(org: Org) -> None:
    http = anonymous(org.server)
    # 1. Create a registration token (operational procedure, step 1).
    created = org.admin.post(
        "/api/v1/registration-tokens",
        params={"org_id": org.id},
        json={"name": "Gateway Registration", "expires_in_days": 30},
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]

    # 2. The gateway registers with it (API Reference: Gateway Registration).
    instance_id = f"gateway-{uuid.uuid4().hex[:6]}"
    request = {
        "name": "FlowGate Gateway",
        "instance_id": instance_id,
        "hostname": "gateway.example.com",
        "ip_address": "192.168.1.100",
        "metadata": {
            "version": "1.0.0",
            "otel_version": "0.88.0",
            "capabilities": ["AcceptsRemoteConfig", "ReportsEffectiveConfig"],
        },
    }
    registered = http.post(
        "/api/v1/gateways", json=request, headers={"Authorization": f"Bearer {token}"}
    )
    assert registered.status_code == 201, registered.text
    gw = registered.json()
    assert set(gw) == {
        "id",
        "name",
        "instance_id",
        "org_id",
        "status",
        "opamp_token",
        "opamp_endpoint",
        "created_at",
    }
    assert (gw["name"], gw["instance_id"], gw["org_id"], gw["status"]) == (
        "FlowGate Gateway",
        instance_id,
        org.id,
        "registered",
    )
    assert gw["opamp_endpoint"] == f"{org.server.url}/api/v1/opamp/v1/opamp"
    assert abs(parse_time(gw["created_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    uuid.UUID(gw["id"])
    assert gw["opamp_token"].count(".") == 2  # a JWT

    before = org.get(f"/api/v1/gateways/{gw['id']}/health").json()
    assert (before["status"], before["health_score"], before["last_seen"]) == (
        "unhealthy",
        20,
        None,
    )

    # 3. Heartbeat (Manual Heartbeat): status ok, the gateway becomes active and healthy.
    auth = {"Authorization": f"Bearer {gw['opamp_token']}"}
    beat = http.post(f"/api/v1/opamp/heartbeat/{instance_id}", headers=auth)
    assert beat.status_code == 200, beat.text
    assert beat.json() == {"status": "ok", "gateway_id": gw["id"]}

    # 4. Viewing agent status: healthy, 100, and every section in the seed's shape.
    status = org.get(f"/api/v1/gateways/{gw['id']}/status").json()
    assert {"gateway_id", "instance_id", "name", "health", "version", "config", "metrics"} <= set(
        status
    )
    assert (status["gateway_id"], status["instance_id"], status["name"]) == (
        gw["id"],
        instance_id,
        "FlowGate Gateway",
    )
    health = status["health"]
    assert set(health) == {
        "status",
        "last_seen",
        "seconds_since_last_seen",
        "uptime_seconds",
        "health_score",
    }
    assert (health["status"], health["health_score"]) == ("healthy", 100)
    assert health["seconds_since_last_seen"] in (0, 1)
    assert health["uptime_seconds"] in (0, 1)
    assert abs(parse_time(health["last_seen"]) - datetime.now(UTC)) < timedelta(seconds=5)
    assert status["version"] == {
        "agent_version": "1.0.0",
        "otel_version": "0.88.0",
        "capabilities": ["AcceptsRemoteConfig", "ReportsEffectiveConfig"],
    }
    assert {"config_yaml", "config_version", "deployment_id", "last_updated"} <= set(
        status["config"]
    )
    assert set(status["metrics"]) == {"logs_processed", "errors", "latency_ms", "last_updated"}
    for part in ("health", "version", "config", "metrics"):
        single = org.get(f"/api/v1/gateways/{gw['id']}/{part}").json()
        if part == "health":
            assert (single["status"], single["health_score"]) == ("healthy", 100)
        else:
            assert single == status[part], part

    # It shows in the agent list the UI polls (GET /api/v1/gateways?org_id=...).
    page = org.get("/api/v1/gateways").json()
    assert [(g["id"], g["status"], g["health"]) for g in page["items"]] == [
        (gw["id"], "active", {"status": "healthy", "health_score": 100})
    ]
    assert page["items"][0]["hostname"] == "gateway.example.com"
    assert page["items"][0]["ip_address"] == "192.168.1.100"

    # 5. Configuration: the base config until one is pushed, then the pushed one.
    cfg = http.get(f"/api/v1/opamp/config/{instance_id}", headers=auth).json()
    assert (cfg["source"], cfg["config_version"]) == ("base", None)
    assert "receivers:" in cfg["config_yaml"]
    pushed = org.admin.put(
        f"/api/v1/gateways/{gw['id']}/remote-config",
        params={"org_id": org.id},
        json={"config_yaml": SEED_CONFIG},
    )
    assert pushed.status_code == 200, pushed.text
    cfg = http.get(f"/api/v1/opamp/config/{instance_id}", headers=auth).json()
    assert (cfg["source"], cfg["config_version"], cfg["config_yaml"]) == ("remote", 1, SEED_CONFIG)
    beat = http.post(
        f"/api/v1/opamp/heartbeat/{instance_id}",
        headers=auth,
        json={
            "config_version": 1,
            "metrics": {"logs_processed": 1000, "errors": 0, "latency_ms": 50.5},
        },
    )
    assert beat.status_code == 200
    # What a heartbeat reports is shown once the next presence flush has written it.
    status = wait_for(
        lambda: (
            (s := org.get(f"/api/v1/gateways/{gw['id']}/status").json())["metrics"][
                "logs_processed"
            ]
            and s
        )
    )
    assert status["config"]["config_version"] == 1
    assert status["config"]["applied_config_version"] == 1
    assert status["metrics"]["logs_processed"] == 1000
    assert status["metrics"]["latency_ms"] == 50.5

    org.server.assert_not_logged(token, gw["opamp_token"])


def test_no_secret_reaches_the_server_log(org: Org) -> None:
    """Exercise every way a secret enters the server, successful and failing, then read the
    whole log: no registration token, OpAMP token, API key, access token or password."""
    http = anonymous(org.server)
    secrets_seen: list[str] = []
    email = f"person-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    secrets_seen.append(password)
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email, "password": password, "role": "operator"},
    )
    assert resp.status_code == 201
    access = login(org.server, email, password)
    secrets_seen.append(access)
    wrong = f"wrong-{uuid.uuid4().hex}"
    secrets_seen.append(wrong)
    assert (
        http.post("/api/v1/auth/login", json={"email": email, "password": wrong}).status_code == 401
    )
    assert (
        http.post(
            "/api/v1/auth/login", json={"email": f"x{email}", "password": password}
        ).status_code
        == 401
    )
    with client(org.server, access) as operator:
        token = operator.post(
            "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "t"}
        ).json()["token"]
    secrets_seen.append(token)
    gw = org.register(token=token, name="logged-gateway")
    secrets_seen.append(gw["opamp_token"])
    again = org.register(gw["instance_id"], token=token)  # re-registration: a new token
    secrets_seen.append(again["opamp_token"])
    assert org.heartbeat(gw).status_code == 401  # the superseded token, refused
    assert org.heartbeat(again).status_code == 200
    assert (
        http.post(
            "/api/v1/gateways",
            json={"name": "x", "instance_id": "x"},
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 401
    )  # used up
    made_up = f"made-up-{uuid.uuid4().hex}"
    secrets_seen.append(made_up)
    assert (
        http.post(
            "/api/v1/gateways",
            json={"name": "x", "instance_id": "x"},
            headers={"Authorization": f"Bearer {made_up}"},
        ).status_code
        == 401
    )
    key = org.admin.post(
        "/api/v1/api-keys", params={"org_id": org.id}, json={"name": "k", "role": "viewer"}
    ).json()
    secrets_seen.append(key["key"])
    with client(org.server, key["key"]) as viewer:
        assert viewer.get("/api/v1/gateways").status_code == 200
    org.admin.delete(f"/api/v1/api-keys/{key['id']}", params={"org_id": org.id})
    with client(org.server, key["key"]) as revoked:
        assert revoked.get("/api/v1/gateways").status_code == 401
    resp = http.post(
        f"/api/v1/opamp/heartbeat/{gw['instance_id']}",
        headers={"Authorization": f"Bearer {made_up}"},
    )
    assert resp.status_code == 401
    org.admin.post(f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id})

    log = org.server.full_log()
    # The log is the right file and does record these events (by id, not by secret).
    assert gw["id"] in log
    assert "gateway re-registered" in log
    assert "login failed" in log
    org.server.assert_not_logged(*secrets_seen)


def check_shapes(value: Any) -> None:
    """Every timestamp the API returns is ISO 8601 with a UTC offset."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(("_at", "last_seen", "last_updated")) and isinstance(item, str):
                assert parse_time(item).utcoffset() == timedelta(0), (key, item)
            check_shapes(item)
    elif isinstance(value, list):
        for item in value:
            check_shapes(item)


def test_timestamps_are_utc(org: Org) -> None:
    gw = org.register()
    org.heartbeat(gw, {"metrics": {"errors": 0}})
    for path in (
        "/api/v1/gateways",
        f"/api/v1/gateways/{gw['id']}",
        f"/api/v1/gateways/{gw['id']}/status",
        "/api/v1/registration-tokens",
        "/api/v1/users",
    ):
        check_shapes(org.get(path).json())
    check_shapes(gw)
