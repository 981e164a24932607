"""Health (offline > never seen > healthy <= 60 s > warning <= 300 s > unhealthy; README
"What is in the box"): the pure rule at its exact boundaries, and the same rule over HTTP
(per-gateway ``/health``, ``/status``, the list's ``health`` filter and summary counts) for
gateways whose ``last_seen`` and status are written straight into the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowgate.gateways.health import compute_health
from flowgate.gateways.models import GatewayStatus
from tests.support.api import Org
from tests.support.db import update_row

NOW = datetime(2025, 11, 14, 7, 0, 0, tzinfo=UTC)
ACTIVE = GatewayStatus.active


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("age", "state", "score"),
    [
        (0, "healthy", 100),
        (59.999, "healthy", 100),
        (60, "healthy", 100),
        (60.001, "warning", 50),
        (61, "warning", 50),
        (299.999, "warning", 50),
        (300, "warning", 50),
        (300.001, "unhealthy", 20),
        (86_400, "unhealthy", 20),
    ],
)
def test_active_gateway_boundaries_are_inclusive(age: float, state: str, score: int) -> None:
    health = compute_health(ACTIVE, ago(age), NOW)
    assert (health.status, health.score) == (state, score)
    assert health.seconds_since_last_seen == pytest.approx(age)


@pytest.mark.parametrize(
    ("status", "age", "state", "score"),
    [
        # Only an *active* gateway can be healthy; a fresh "registered" one is a warning.
        (GatewayStatus.registered, 0, "warning", 50),
        (GatewayStatus.registered, 60, "warning", 50),
        (GatewayStatus.registered, 300, "warning", 50),
        (GatewayStatus.registered, 300.001, "unhealthy", 20),
        # inactive / error win over any age: offline, 0.
        (GatewayStatus.inactive, 0, "offline", 0),
        (GatewayStatus.inactive, 1000, "offline", 0),
        (GatewayStatus.error, 0, "offline", 0),
        (GatewayStatus.error, 1000, "offline", 0),
    ],
)
def test_status_precedence(status: GatewayStatus, age: float, state: str, score: int) -> None:
    health = compute_health(status, ago(age), NOW)
    assert (health.status, health.score) == (state, score)


def test_never_seen_is_unhealthy_unless_offline() -> None:
    for status in (GatewayStatus.registered, GatewayStatus.active):
        health = compute_health(status, None, NOW)
        assert (health.status, health.score, health.seconds_since_last_seen) == (
            "unhealthy",
            20,
            None,
        )
    for status in (GatewayStatus.inactive, GatewayStatus.error):
        assert compute_health(status, None, NOW).status == "offline"


def test_thresholds_are_parameters() -> None:
    def state(age: float) -> str:
        return compute_health(ACTIVE, ago(age), NOW, healthy_seconds=10, warning_seconds=20).status

    assert [state(a) for a in (10, 10.001, 20, 20.001)] == [
        "healthy",
        "warning",
        "warning",
        "unhealthy",
    ]


# -- over HTTP, with last_seen written into the database ---------------------------------------


def put_state(org: Org, gateway: dict[str, Any], status: str, seconds_ago: float | None) -> None:
    """Write status and last_seen for a gateway that never sent a heartbeat, so the server holds
    no buffered state for it and must read what the database says; and the stored health, as
    every writer does in the same UPDATE (the list's filter and summary read it; that the
    sweep corrects a row written without it is tested in tests/test_health_history.py)."""
    now = datetime.now(UTC)
    last_seen = None if seconds_ago is None else now - timedelta(seconds=seconds_ago)
    health = compute_health(GatewayStatus(status), last_seen, now).status
    update_row(
        org.server, "gateways", gateway["id"], status=status, last_seen=last_seen, health=health
    )


@pytest.mark.parametrize(
    ("seconds_ago", "state", "score"),
    [(59, "healthy", 100), (61, "warning", 50), (299, "warning", 50), (301, "unhealthy", 20)],
)
def test_health_endpoint_around_the_boundaries(
    org: Org, seconds_ago: int, state: str, score: int
) -> None:
    gw = org.register()
    put_state(org, gw, "active", seconds_ago)
    health = org.get(f"/api/v1/gateways/{gw['id']}/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert (body["status"], body["health_score"]) == (state, score)
    assert seconds_ago <= body["seconds_since_last_seen"] <= seconds_ago + 2
    assert body["last_seen"] is not None
    status = org.get(f"/api/v1/gateways/{gw['id']}/status").json()
    assert status["status"] == "active"
    assert (status["health"]["status"], status["health"]["health_score"]) == (state, score)
    item = org.get(f"/api/v1/gateways/{gw['id']}").json()
    assert item["health"] == {"status": state, "health_score": score}


@pytest.mark.parametrize("status", ["inactive", "error"])
def test_offline_statuses_win_over_a_recent_heartbeat(org: Org, status: str) -> None:
    gw = org.register()
    put_state(org, gw, status, 1)
    body = org.get(f"/api/v1/gateways/{gw['id']}/health").json()
    assert (body["status"], body["health_score"]) == ("offline", 0)


def test_list_health_filters_and_summary_follow_the_same_rule(org: Org) -> None:
    states = {
        "a-59": ("active", 59),
        "b-61": ("active", 61),
        "c-299": ("active", 299),
        "d-301": ("active", 301),
        "e-registered-10": ("registered", 10),
        "f-never": ("registered", None),
        "g-inactive": ("inactive", 5),
        "h-error": ("error", 5),
    }
    ids = {name: org.register(name=name)["id"] for name in states}
    for name, (status, seconds_ago) in states.items():
        put_state(org, {"id": ids[name]}, status, seconds_ago)

    expected = {
        "healthy": {"a-59"},
        "warning": {"b-61", "c-299", "e-registered-10"},
        "unhealthy": {"d-301", "f-never"},
        "offline": {"g-inactive", "h-error"},
    }
    for health, names in expected.items():
        page = org.get("/api/v1/gateways", health=health)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert {i["name"] for i in items} == names, health
        assert {i["health"]["status"] for i in items} == {health}

    page = org.get("/api/v1/gateways").json()
    assert {i["name"]: i["health"]["status"] for i in page["items"]} == {
        name: health for health, names in expected.items() for name in names
    }
    assert page["summary"] == {
        "total": 8,
        "by_status": {"registered": 2, "active": 4, "inactive": 1, "error": 1},
        "by_health": {"healthy": 1, "warning": 3, "unhealthy": 2, "offline": 2},
    }
    filtered = org.get("/api/v1/gateways", status="active", health="warning").json()
    assert {i["name"] for i in filtered["items"]} == {"b-61", "c-299"}


def test_unknown_health_filter_is_rejected(org: Org) -> None:
    resp = org.get("/api/v1/gateways", health="sick")
    assert resp.status_code == 422, resp.text
    assert "health" in resp.json()["detail"]
