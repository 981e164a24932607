"""The seed's system metrics at ``/metrics``, parsed with prometheus_client's own parser, on a
live server per database: the fleet gauges and counters follow gateways as they register,
heartbeat, go quiet, are refused and are deactivated; the endpoint takes a bearer token. And
the CLI's commands land in the audit log."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import db
from tests.support.api import Org, anonymous, new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.ws_agent import WsAgent

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str) -> Samples:
    resp = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_fleet_metrics_follow_the_gateways(make_server: Callable[..., Any]) -> None:
    token = secrets.token_urlsafe(24)
    server = make_server(
        FLOWGATE_METRICS_TOKEN=token,
        FLOWGATE_METRICS_FLEET_SECONDS="0.2",
        FLOWGATE_HEALTH_HEALTHY_SECONDS="3",
        FLOWGATE_HEALTH_WARNING_SECONDS="6",
        FLOWGATE_FLUSH_INTERVAL_SECONDS="0.2",
        # Stored health ages by the sweep: tick often enough to see the 3 s "warning" window.
        FLOWGATE_HEALTH_SWEEP_SECONDS="0.5",
    )
    # Without the token, or with a wrong one: 401, and nothing about the fleet.
    assert anonymous(server).get("/metrics").status_code == 401
    wrong = anonymous(server).get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "flowgate_" not in wrong.text

    su = superuser_client(server)
    org = new_org(server, su)
    labels = {"org_id": org.id, "org": org.name}

    def gauge(status: str, health: str) -> Callable[[], Samples | None]:
        def probe() -> Samples | None:
            s = scrape(server.url, token)
            return (
                s if value(s, "flowgate_gateways", **labels, status=status, health=health) else None
            )

        return probe

    before = scrape(server.url, token)
    gw = org.register()
    s = wait_for(gauge("registered", "unhealthy"))
    assert value(s, "flowgate_gateways", **labels, status="registered", health="unhealthy") == 1
    assert value(s, "flowgate_gateway_health_score_average", **labels) == 20
    assert value(s, "flowgate_registrations_total", transport="rest", outcome="created") == (
        value(before, "flowgate_registrations_total", transport="rest", outcome="created") + 1
    )

    assert org.heartbeat(gw).status_code == 200
    s = wait_for(gauge("active", "healthy"))
    assert value(s, "flowgate_gateways", **labels, status="registered", health="unhealthy") == 0
    assert value(s, "flowgate_gateway_health_score_average", **labels) == 100
    received = value(before, "flowgate_heartbeats_received_total")
    assert value(s, "flowgate_heartbeats_received_total") == received + 1

    # Refused: another instance's path, and a token that is not one.
    other = {**gw, "instance_id": "someone-else"}
    assert org.heartbeat(other).status_code == 403
    assert org.heartbeat({**gw, "opamp_token": "x" * 40}).status_code == 401
    s = scrape(server.url, token)
    for reason in ("instance_mismatch", "invalid_token"):
        was = value(before, "flowgate_heartbeats_refused_total", reason=reason)
        assert value(s, "flowgate_heartbeats_refused_total", reason=reason) == was + 1, reason
    assert value(s, "flowgate_heartbeats_received_total") == received + 3

    # It goes quiet: healthy -> warning once the healthy threshold passes, with no request.
    s = wait_for(gauge("active", "warning"), timeout=15)
    assert value(s, "flowgate_gateway_health_score_average", **labels) == 50

    deactivated = org.admin.post(
        f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id}
    )
    assert deactivated.status_code == 200, deactivated.text
    s = wait_for(gauge("inactive", "offline"))
    assert value(s, "flowgate_gateways", **labels, status="active", health="warning") == 0
    assert value(s, "flowgate_gateway_health_score_average", **labels) == 0
    # Its token was revoked: the next heartbeat is refused as an invalid token.
    assert org.heartbeat(gw).status_code == 401
    s = scrape(server.url, token)
    was = value(before, "flowgate_heartbeats_refused_total", reason="invalid_token")
    assert value(s, "flowgate_heartbeats_refused_total", reason="invalid_token") == was + 2
    # Counters are conventional: *_total, and the fleet gauges say how fresh they are.
    assert 0 <= value(s, "flowgate_fleet_gauges_age_seconds") < 5
    assert value(s, "flowgate_audit_entries_total", result="success") >= 3
    server.assert_not_logged(token)


def test_cli_commands_are_audited(make_server: Callable[..., Any]) -> None:
    server = make_server()
    name = f"cli-{uuid.uuid4().hex[:8]}"
    org_id = server.cli("orgs", "create", name).stdout.strip()
    server.cli("tokens", "create", "--org", name, "--name", "fleet")
    failed = server.cli("orgs", "create", name, check=False)
    assert failed.returncode == 1
    rows = db.query(
        server,
        "SELECT action, object_type, org_id, actor_kind, actor_label, result, status_code "
        "FROM audit_log WHERE actor_kind = 'cli' ORDER BY id",
    )
    org = uuid.UUID(org_id)
    normal = [(a, t, uuid.UUID(str(o)) if o else None, k, r, c) for a, t, o, k, _, r, c in rows]
    assert normal == [
        ("org.create", "org", org, "cli", "success", 200),
        ("registration_token.create", "registration_token", org, "cli", "success", 200),
        ("org.create", None, None, "cli", "failed", 409),
    ]
    assert all(str(row[4]).startswith("cli:") for row in rows)


async def test_opamp_enrolment_is_audited_with_its_registration_token(org: Org) -> None:
    made = org.admin.post(
        "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": "fleet"}
    )
    assert made.status_code == 201, made.text
    token = made.json()
    before = scrape_open(org.server.url)
    async with WsAgent(org.server.ws_url + "/v1/opamp", token["token"]) as agent:
        reply = await agent.request(agent.full_state())
        assert not reply.HasField("error_response")
    rows = await asyncio.to_thread(
        db.query,
        org.server,
        "SELECT actor_kind, actor_label, object_type, object_id, result, detail, address "
        "FROM audit_log WHERE action = 'gateway.register' AND actor_id = ?",
        uuid.UUID(token["id"]),
    )
    assert len(rows) == 1, rows
    kind, label, object_type, object_id, result, detail, address = rows[0]
    assert address == "127.0.0.1"
    gateway = org.get("/api/v1/gateways").json()["items"][0]
    assert (kind, label, object_type, object_id, result) == (
        "registration_token",
        "fleet",
        "gateway",
        gateway["id"],
        "success",
    )
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail == {"transport": "opamp-ws", "created": True}
    after = scrape_open(org.server.url)
    opamp = (
        "flowgate_registrations_total",
        frozenset({"transport": "opamp", "outcome": "created"}.items()),
    )
    assert after.get(opamp, 0) == before.get(opamp, 0) + 1
    ws = ("flowgate_opamp_messages_total", frozenset({"transport": "ws"}.items()))
    assert after.get(ws, 0) >= before.get(ws, 0) + 1


def scrape_open(url: str) -> Samples:
    resp = httpx.get(f"{url}/metrics", timeout=10)
    assert resp.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
