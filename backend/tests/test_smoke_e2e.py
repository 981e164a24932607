"""The seed's operational procedure, end to end, over HTTP against a live server."""

from __future__ import annotations

import httpx

from tests.support.api import Org
from tests.support.polling import wait_for


def test_token_register_heartbeat_status_config(org: Org) -> None:
    token = org.registration_token(name="Gateway Registration", expires_in_days=30)
    gw = org.register(
        "gateway-1",
        token=token,
        name="FlowGate Gateway",
        hostname="gateway.example.com",
        ip_address="192.168.1.100",
        metadata={
            "version": "1.0.0",
            "otel_version": "0.88.0",
            "capabilities": ["AcceptsRemoteConfig", "ReportsEffectiveConfig"],
        },
    )
    assert gw["status"] == "registered"
    assert gw["opamp_endpoint"] == f"{org.server.url}/api/v1/opamp/v1/opamp"
    hb = org.heartbeat(gw)
    assert hb.status_code == 200
    assert hb.json() == {"status": "ok", "gateway_id": gw["id"]}
    # The list and the detail views read the database: the heartbeat shows after its flush.
    status = wait_for(
        lambda: (
            (s := org.get(f"/api/v1/gateways/{gw['id']}/status").json())["status"] == "active" and s
        )
    )
    assert status["health"]["status"] == "healthy"
    assert status["health"]["health_score"] == 100
    assert status["version"] == {
        "agent_version": "1.0.0",
        "otel_version": "0.88.0",
        "capabilities": ["AcceptsRemoteConfig", "ReportsEffectiveConfig"],
    }
    cfg = httpx.get(
        f"{org.server.url}/api/v1/opamp/config/gateway-1",
        headers={"Authorization": f"Bearer {gw['opamp_token']}"},
    ).json()
    assert cfg["source"] == "base"
    assert "receivers:" in cfg["config_yaml"]
