"""Alerting end to end on SQLite and PostgreSQL: live servers evaluating rules on a short
schedule, and a real HTTP receiver verifying every webhook's signature.

Health thresholds are short here (healthy 1 s, warning 2 s): a gateway that stops
heartbeating is unhealthy within about two seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import database_for
from tests.support.api import Org, new_org, superuser_client
from tests.support.db import update_row
from tests.support.polling import wait_for
from tests.support.server import LiveServer, drop_pg_database
from tests.support.webhooks import Receiver
from tests.test_replicas import REDIS, redis_available

ALERT_ENV = {
    "FLOWGATE_ALERT_INTERVAL_SECONDS": "0.3",
    "FLOWGATE_HEALTH_HEALTHY_SECONDS": "1",
    "FLOWGATE_HEALTH_WARNING_SECONDS": "2",
    "FLOWGATE_ALERT_WEBHOOK_BACKOFF_SECONDS": "0.3",
    "FLOWGATE_ALERT_WEBHOOK_MAX_ATTEMPTS": "4",
}
GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


@pytest.fixture(scope="module")
def alert_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"alerts-{backend}")
    url, pg_name = database_for(backend, tmp)
    live = LiveServer(data_dir=tmp / "data", database_url=url, extra_env=ALERT_ENV)
    live.start()
    try:
        yield live
    finally:
        live.stop()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture
def aorg(alert_server: LiveServer) -> Iterator[Org]:
    with superuser_client(alert_server) as admin:
        yield new_org(alert_server, admin)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def post(org: Org, path: str, body: dict[str, Any]) -> httpx.Response:
    return org.admin.post(path, params={"org_id": org.id}, json=body)


def channel(org: Org, receiver: Receiver) -> str:
    resp = post(org, "/api/v1/notification-channels", {"name": "hook", "url": receiver.url})
    assert resp.status_code == 201, resp.text
    receiver.secret = resp.json()["secret"]
    channel_id: str = resp.json()["id"]
    return channel_id


def rule(org: Org, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"rule-{uuid.uuid4().hex[:6]}")
    resp = post(org, "/api/v1/alert-rules", body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def alerts(org: Org, **params: Any) -> list[dict[str, Any]]:
    resp = org.get("/api/v1/alerts", **params)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def healthy_gateway(org: Org, **labels: str) -> dict[str, Any]:
    gw = org.register(labels=labels)
    assert org.heartbeat(gw).status_code == 200
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active")
    return gw


def metric(server: LiveServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not exported")


class Heartbeats:
    """Keep a gateway heartbeating from a thread until stopped."""

    def __init__(self, org: Org, gw: dict[str, Any], every: float = 0.3) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(org, gw, every), daemon=True)

    def _run(self, org: Org, gw: dict[str, Any], every: float) -> None:
        while not self.stop_event.is_set():
            org.heartbeat(gw)
            self.stop_event.wait(every)

    def __enter__(self) -> Heartbeats:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        self.thread.join()


# -- two replicas ----------------------------------------------------------------------------


@pytest.fixture
def two_replicas(backend: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    env = dict(ALERT_ENV)
    if redis_available():
        env["FLOWGATE_REDIS_URL"] = REDIS
    secret = uuid.uuid4().hex * 2
    a = LiveServer(data_dir=tmp_path / "a", database_url=url, extra_env=env, secret_key=secret)
    b = LiveServer(data_dir=tmp_path / "b", database_url=url, extra_env=env, secret_key=secret)
    try:
        a.launch()
        b.launch()
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()
        if pg_name:
            drop_pg_database(pg_name)


def test_a_silent_gateway_fires_once_across_two_replicas_and_resolves(
    two_replicas: tuple[LiveServer, LiveServer], receiver: Receiver
) -> None:
    a, b = two_replicas
    with superuser_client(a) as admin:
        org = new_org(a, admin)
        on_b = Org(server=b, id=org.id, name=org.name, admin=org.admin)
        gw = healthy_gateway(org, team="alerts")
        other = healthy_gateway(org, team="other")  # not selected: never alerts
        ch = channel(org, receiver)
        r = rule(
            org, kind="gateway_unhealthy", selector="team=alerts", for_minutes=0, channel_ids=[ch]
        )
        # The gateway stops heartbeating: unhealthy after 2 s, notified once.
        wait_for(lambda: receiver.events("firing"), timeout=20)
        time.sleep(2.0)  # ~7 evaluation intervals on each replica
        fired = receiver.events("firing")
        assert len(fired) == 1, fired
        assert receiver.rejected == []
        body = fired[0]
        assert body["alert"]["rule"] == {"id": r["id"], "name": r["name"], "kind": r["kind"]}
        assert body["alert"]["subject"] == gw["id"]
        assert body["alert"]["labels"] == {"team": "alerts"}
        assert body["alert"]["state"] == "firing"
        assert body["org_id"] == org.id
        firing = alerts(org, state="firing")
        assert [x["subject"] for x in firing] == [gw["id"]]
        assert other["id"] not in {x["subject"] for x in alerts(org)}
        # One replica evaluates (holds the lease); the other does not.
        evaluations = sorted(metric(s, "flowgate_alert_evaluations_total") for s in (a, b))
        assert evaluations[0] == 0 and evaluations[1] > 3, evaluations
        # It heartbeats again (through the other replica): one resolved notification.
        with Heartbeats(on_b, gw):
            wait_for(lambda: receiver.events("resolved"), timeout=20)
            time.sleep(1.0)
            assert len(receiver.events("resolved")) == 1
            assert len(receiver.events("firing")) == 1
            resolved = receiver.events("resolved")[0]["alert"]
            assert resolved["id"] == body["alert"]["id"] and resolved["state"] == "resolved"
            assert alerts(org, state="firing") == []
            assert [x["id"] for x in alerts(org, state="resolved")] == [resolved["id"]]
        sent = sum(metric(s, "flowgate_alert_notifications_total", result="sent") for s in (a, b))
        assert sent == 2


# -- one server ------------------------------------------------------------------------------


def test_a_silence_suppresses_notifications_until_it_ends(aorg: Org, receiver: Receiver) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    ch = channel(aorg, receiver)
    r = rule(
        aorg, kind="gateway_unhealthy", selector=f"team={team}", for_minutes=0, channel_ids=[ch]
    )
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    resp = post(aorg, "/api/v1/silences", {"selector": f"team={team}", "ends_at": ends})
    assert resp.status_code == 201, resp.text
    silence = resp.json()
    assert silence["active"] is True
    gw = aorg.register(labels={"team": team})  # never heartbeats: unhealthy at once
    found = wait_for(lambda: alerts(aorg, rule_id=r["id"]), timeout=15)
    assert found[0]["subject"] == gw["id"] and found[0]["silenced"] is True
    time.sleep(1.5)
    assert receiver.requests == 0
    assert found[0]["notified"] is False
    # The silence ends: the alert, still firing, is notified now (once).
    resp = aorg.admin.delete(f"/api/v1/silences/{silence['id']}", params={"org_id": aorg.id})
    assert resp.status_code == 204
    wait_for(lambda: receiver.events("firing"), timeout=15)
    time.sleep(1.0)
    assert len(receiver.events("firing")) == 1
    assert alerts(aorg, rule_id=r["id"])[0]["silenced"] is False


def test_a_failed_or_rolled_back_deployment_fires(aorg: Org, receiver: Receiver) -> None:
    ch = channel(aorg, receiver)
    r = rule(aorg, kind="deployment_failed", within_minutes=30, channel_ids=[ch])
    gw = healthy_gateway(aorg)
    created = post(aorg, "/api/v1/configs", {"name": f"t-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    config_id = created.json()["id"]
    resp = post(aorg, f"/api/v1/configs/{config_id}/versions", {"config_yaml": GOOD})
    assert resp.status_code == 201, resp.text
    resp = post(
        aorg, "/api/v1/deployments", {"config_id": config_id, "target": {"gateway_ids": [gw["id"]]}}
    )
    assert resp.status_code == 201, resp.text
    deployment_id = resp.json()["id"]
    time.sleep(1.0)
    assert receiver.requests == 0  # rolling out is not failing
    resp = post(aorg, f"/api/v1/deployments/{deployment_id}/rollback", {})
    assert resp.status_code in (200, 201), resp.text
    fired = wait_for(lambda: receiver.events("firing"), timeout=15)
    assert len(fired) == 1
    alert = fired[0]["alert"]
    assert alert["rule"]["id"] == r["id"] and alert["subject"] == deployment_id
    assert alert["details"]["state"] == "rolled_back"
    assert "rolled back" in alert["summary"]


def test_an_expiring_registration_token_fires(aorg: Org, receiver: Receiver) -> None:
    ch = channel(aorg, receiver)
    rule(aorg, kind="token_expiring", hours=48, channel_ids=[ch])
    soon = post(aorg, "/api/v1/registration-tokens", {"name": "soon", "expires_in_days": 1})
    later = post(aorg, "/api/v1/registration-tokens", {"name": "later", "expires_in_days": 30})
    assert soon.status_code == later.status_code == 201
    fired = wait_for(lambda: receiver.events("firing"), timeout=15)
    time.sleep(1.0)
    assert [e["alert"]["subject"] for e in receiver.events("firing")] == [soon.json()["id"]]
    assert fired[0]["alert"]["subject_name"] == "soon"
    # Revoked: no longer about to expire, so the alert resolves.
    resp = aorg.admin.delete(
        f"/api/v1/registration-tokens/{soon.json()['id']}", params={"org_id": aorg.id}
    )
    assert resp.status_code == 200
    wait_for(lambda: receiver.events("resolved"), timeout=15)


def test_more_than_a_share_of_the_fleet_unhealthy_fires(aorg: Org, receiver: Receiver) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    ch = channel(aorg, receiver)
    gws = [aorg.register(labels={"team": team}) for _ in range(3)]
    with Heartbeats(aorg, gws[0]), Heartbeats(aorg, gws[1]):
        for gw in gws[:2]:
            wait_for(
                lambda gw=gw: aorg.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active"
            )
        rule(
            aorg,
            kind="fleet_unhealthy_percent",
            selector=f"team={team}",
            percent=40,
            channel_ids=[ch],
        )
        time.sleep(3.0)  # 1 of 3 (33 %) unhealthy: not more than 40 %
        assert receiver.requests == 0
    fired = wait_for(lambda: receiver.events("firing"), timeout=15)
    assert fired[0]["alert"]["subject"] == "fleet"
    assert fired[0]["alert"]["details"]["total"] == 3


def test_a_failing_receiver_is_retried_with_backoff(alert_server: LiveServer, aorg: Org) -> None:
    receiver = Receiver(fail_first=2).start()
    try:
        ch = channel(aorg, receiver)
        before = metric(alert_server, "flowgate_alert_notifications_total", result="failed")
        rule(aorg, kind="token_expiring", hours=48, channel_ids=[ch])
        post(aorg, "/api/v1/registration-tokens", {"name": "soon", "expires_in_days": 1})
        fired = wait_for(lambda: receiver.events("firing"), timeout=20)
        assert receiver.requests == 3
        assert fired[0]["attempt"] == 3
        # Backoff: 0.3 s after the first failure, 0.6 s after the second.
        first, second = receiver.failed_at
        delivered_at = receiver.deliveries[0].at
        assert second - first >= 0.25
        assert delivered_at - second >= 0.5
        after = metric(alert_server, "flowgate_alert_notifications_total", result="failed")
        assert after - before >= 2
        (delivery,) = wait_for(
            lambda: [
                d
                for d in aorg.get(f"/api/v1/notification-channels/{ch}/deliveries").json()
                if d["state"] == "sent"
            ]
        )
        assert delivery["attempts"] == 3 and delivery["last_status"] == 200
        assert delivery["event"] == "firing" and delivery["last_error"] is None
    finally:
        receiver.stop()


def test_a_receiver_that_keeps_failing_is_given_up_on(alert_server: LiveServer, aorg: Org) -> None:
    receiver = Receiver(fail_first=1000).start()
    try:
        ch = channel(aorg, receiver)
        rule(aorg, kind="token_expiring", hours=48, channel_ids=[ch])
        post(aorg, "/api/v1/registration-tokens", {"name": "soon", "expires_in_days": 1})
        wait_for(lambda: receiver.requests >= 4, timeout=20)
        time.sleep(3.0)  # a fifth attempt would be due 2.4 s after the fourth
        assert receiver.requests == 4  # FLOWGATE_ALERT_WEBHOOK_MAX_ATTEMPTS
        (delivery,) = aorg.get(f"/api/v1/notification-channels/{ch}/deliveries").json()
        assert delivery["state"] == "failed" and delivery["attempts"] == 4
        assert (delivery["last_status"], delivery["last_error"]) == (500, "HTTP 500")
    finally:
        receiver.stop()


def test_the_test_endpoint_sends_one_signed_delivery(aorg: Org, receiver: Receiver) -> None:
    ch = channel(aorg, receiver)
    resp = post(aorg, f"/api/v1/notification-channels/{ch}/test", {})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"delivered": True, "status_code": 200, "error": None}
    (test,) = receiver.events("test")
    assert test["channel"]["id"] == ch and test["alert"] is None
    # A receiver that does not know the secret refuses it, and the endpoint says so.
    receiver.secret = "whsec_wrong"
    resp = post(aorg, f"/api/v1/notification-channels/{ch}/test", {})
    assert resp.json() == {"delivered": False, "status_code": 401, "error": "HTTP 401"}


def test_the_secret_is_shown_once_and_never_logged(
    alert_server: LiveServer, aorg: Org, receiver: Receiver
) -> None:
    ch = channel(aorg, receiver)
    assert receiver.secret and receiver.secret.startswith("whsec_")
    shown = aorg.get(f"/api/v1/notification-channels/{ch}").json()
    listed = aorg.get("/api/v1/notification-channels").json()
    assert "secret" not in shown and all("secret" not in c for c in listed)
    assert receiver.secret not in str(shown) + str(listed)
    post(aorg, f"/api/v1/notification-channels/{ch}/test", {})
    alert_server.assert_not_logged(receiver.secret)


def test_viewers_read_and_cannot_write(aorg: Org, receiver: Receiver) -> None:
    ch = channel(aorg, receiver)
    r = rule(aorg, kind="token_expiring", channel_ids=[ch])
    with aorg.user("viewer") as viewer:
        q = {"org_id": aorg.id}
        assert viewer.get("/api/v1/alert-rules", params=q).json()[0]["id"] == r["id"]
        assert viewer.get("/api/v1/notification-channels", params=q).status_code == 200
        assert viewer.get("/api/v1/alerts", params=q).status_code == 200
        assert viewer.get("/api/v1/silences", params=q).status_code == 200
        writes = [
            viewer.post(
                "/api/v1/alert-rules", params=q, json={"name": "x", "kind": "token_expiring"}
            ),
            viewer.patch(f"/api/v1/alert-rules/{r['id']}", params=q, json={"enabled": False}),
            viewer.delete(f"/api/v1/alert-rules/{r['id']}", params=q),
            viewer.post(
                "/api/v1/notification-channels", params=q, json={"name": "x", "url": receiver.url}
            ),
            viewer.post(f"/api/v1/notification-channels/{ch}/test", params=q),
            viewer.delete(f"/api/v1/notification-channels/{ch}", params=q),
            viewer.post(
                "/api/v1/silences",
                params=q,
                json={"rule_id": r["id"], "ends_at": "2100-01-01T00:00:00Z"},
            ),
        ]
        assert [w.status_code for w in writes] == [403] * len(writes)
    assert receiver.requests == 0
    assert aorg.get(f"/api/v1/alert-rules/{r['id']}").json()["enabled"] is True


def test_another_organisations_objects_are_not_found(
    alert_server: LiveServer, aorg: Org, receiver: Receiver
) -> None:
    ch = channel(aorg, receiver)
    r = rule(aorg, kind="token_expiring", channel_ids=[ch])
    ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    s = post(aorg, "/api/v1/silences", {"rule_id": r["id"], "ends_at": ends}).json()
    with superuser_client(alert_server) as admin:
        other = new_org(alert_server, admin)
        with other.user("admin") as stranger:
            q = {"org_id": other.id}
            paths = [
                f"/api/v1/alert-rules/{r['id']}",
                f"/api/v1/notification-channels/{ch}",
            ]
            assert stranger.get(f"{paths[1]}/deliveries", params=q).status_code == 404
            for path in paths:
                assert stranger.get(path, params=q).status_code == 404
                assert stranger.delete(path, params=q).status_code == 404
            assert stranger.patch(paths[0], params=q, json={"enabled": False}).status_code == 404
            assert stranger.post(f"{paths[1]}/test", params=q).status_code == 404
            assert stranger.delete(f"/api/v1/silences/{s['id']}", params=q).status_code == 404
            # Its own org's rule cannot use the other org's channel or rule.
            bad = stranger.post(
                "/api/v1/alert-rules",
                params=q,
                json={"name": "x", "kind": "token_expiring", "channel_ids": [ch]},
            )
            assert bad.status_code == 422 and ch in bad.json()["detail"]
            bad = stranger.post(
                "/api/v1/silences", params=q, json={"rule_id": r["id"], "ends_at": ends}
            )
            assert bad.status_code == 422
            # And the other org's org_id itself is not found for a stranger.
            assert stranger.get("/api/v1/alerts", params={"org_id": aorg.id}).status_code == 404
            assert stranger.get("/api/v1/alert-rules", params=q).json() == []
    assert receiver.requests == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "gateway_unhealthy", "selector": "env in (prod"}, "Invalid selector"),
        ({"kind": "fleet_unhealthy_percent"}, "percent is required"),
        ({"kind": "fleet_unhealthy_percent", "percent": 100}, "percent must be between"),
        ({"kind": "gateway_unhealthy", "for_minutes": -1}, "for_minutes must be between"),
        ({"kind": "token_expiring", "for_minutes": 3}, "for_minutes does not apply"),
        ({"kind": "token_expiring", "selector": "env=prod"}, "selector does not apply"),
        ({"kind": "nope"}, "kind"),
        ({"kind": "token_expiring", "hour": 3}, "hour: Extra inputs are not permitted"),
        ({"kind": "token_expiring", "channel_ids": [str(uuid.uuid4())]}, "no such notification"),
    ],
)
def test_bad_rules_are_422_with_a_message(aorg: Org, body: dict[str, Any], message: str) -> None:
    resp = post(aorg, "/api/v1/alert-rules", {"name": "r", **body})
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["detail"]
    assert aorg.get("/api/v1/alert-rules").json() == []


def test_bad_channels_silences_and_patches_are_422(aorg: Org, receiver: Receiver) -> None:
    for url in ("ftp://example.com/x", "not a url", "http://user:pw@example.com/"):
        resp = post(aorg, "/api/v1/notification-channels", {"name": "c", "url": url})
        assert resp.status_code == 422, resp.text
        assert "url" in resp.json()["detail"]
    r = rule(aorg, kind="gateway_unhealthy")
    assert r["for_minutes"] == 5
    bad = [
        ({"ends_at": "2100-01-01T00:00:00Z"}, "rule_id or selector"),
        ({"selector": "a=b", "ends_at": "2000-01-01T00:00:00Z"}, "future"),
        ({"selector": "a=", "ends_at": "2100-01-01T00:00:00"}, "time zone"),
        ({"selector": "!", "ends_at": "2100-01-01T00:00:00Z"}, "Invalid selector"),
    ]
    for body, message in bad:
        resp = post(aorg, "/api/v1/silences", body)
        assert resp.status_code == 422, resp.text
        assert message in resp.json()["detail"], resp.text
    path = f"/api/v1/alert-rules/{r['id']}"
    resp = aorg.admin.patch(path, params={"org_id": aorg.id}, json={"percent": 10})
    assert resp.status_code == 422 and "percent does not apply" in resp.json()["detail"]
    resp = aorg.admin.patch(path, params={"org_id": aorg.id}, json={"kind": "token_expiring"})
    assert resp.status_code == 422 and "kind" in resp.json()["detail"]
    resp = aorg.admin.patch(path, params={"org_id": aorg.id}, json={"for_minutes": 1.5})
    assert resp.status_code == 200 and resp.json()["for_minutes"] == 1.5
    assert aorg.get("/api/v1/silences").json() == []


def test_a_rule_that_cannot_be_evaluated_does_not_stop_the_others(
    alert_server: LiveServer, aorg: Org, receiver: Receiver
) -> None:
    ch = channel(aorg, receiver)
    broken = rule(aorg, kind="gateway_unhealthy", selector="env=prod", channel_ids=[ch])
    # Stored before a rule of the selector language changed, say: it no longer parses.
    update_row(alert_server, "alert_rules", uuid.UUID(broken["id"]), selector="env in (")
    rule(aorg, kind="token_expiring", hours=48, channel_ids=[ch])
    post(aorg, "/api/v1/registration-tokens", {"name": "soon", "expires_in_days": 1})
    fired = wait_for(lambda: receiver.events("firing"), timeout=15)
    assert fired[0]["alert"]["rule"]["kind"] == "token_expiring"
    assert "alert rule cannot be evaluated" in alert_server.full_log()
