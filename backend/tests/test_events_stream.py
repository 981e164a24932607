"""Live events over Server-Sent Events: what happens to an organisation's gateways, as it
happens, to that organisation's viewers only; on every replica; ended cleanly."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import Org, client, login, new_org, superuser_client
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.support.sse import EventStream
from tests.test_replicas import replicas  # noqa: F401 - the two-replica fixture

COLLECTOR_YAML = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


def bearer(org: Org) -> dict[str, str]:
    return {"Authorization": str(org.admin.headers["Authorization"])}


def new_member(org: Org, role: str) -> tuple[str, str]:
    email = f"e-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    resp = org.admin.post(
        "/api/v1/users",
        params={"org_id": org.id},
        json={"email": email, "password": password, "role": role},
    )
    assert resp.status_code == 201, resp.text
    return email, password


def session_cookies(server: LiveServer, email: str, password: str) -> dict[str, str]:
    resp = httpx.post(
        server.url + "/api/v1/auth/session",
        json={"email": email, "password": password},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.cookies)


def test_a_gateways_life_streams_to_its_organisation(org: Org, superuser: httpx.Client) -> None:
    other = new_org(org.server, superuser)
    with (
        EventStream.open(org.server, org.id, headers=bearer(org)) as stream,
        EventStream.open(org.server, other.id, headers=bearer(other)) as elsewhere,
    ):
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.next().retry == "3000"  # the first frame
        assert elsewhere.next().retry == "3000"

        gw = org.register(name="streamed")
        registered = stream.next("gateway.registered", gateway_id=gw["id"])
        assert registered.json == {"gateway_id": gw["id"], "org_id": org.id, "created": True}

        assert org.heartbeat(gw).status_code == 200  # registered -> active
        status = stream.next("gateway.status", gateway_id=gw["id"])
        assert status.json["status"] == "active"
        assert (status.json["health"], status.json["health_score"]) == ("healthy", 100)
        assert status.json["org_id"] == org.id and status.json["last_seen"]
        stored = org.get(f"/api/v1/gateways/{gw['id']}").json()["last_seen"]
        assert datetime.fromisoformat(status.json["last_seen"]) == datetime.fromisoformat(stored)

        resp = org.admin.patch(
            f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}, json={"name": "renamed"}
        )
        assert resp.status_code == 200, resp.text
        changed = stream.next("gateway.changed")
        assert changed.json == {"gateway_id": gw["id"], "org_id": org.id}

        resp = org.admin.put(
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML},
        )
        assert resp.status_code in (200, 201), resp.text
        config = stream.next("config.changed")
        assert config.json == {"org_id": org.id, "gateway_ids": [gw["id"]]}

        resp = org.admin.post(f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id})
        assert resp.status_code == 200, resp.text
        inactive = stream.next("gateway.status", gateway_id=gw["id"])
        assert inactive.json == {
            "gateway_id": gw["id"],
            "org_id": org.id,
            "status": "inactive",
            "health": "offline",
            "health_score": 0,
            "last_seen": status.json["last_seen"],
        }

        resp = org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id})
        assert resp.status_code == 204, resp.text
        deleted = stream.next("gateway.deleted")
        assert deleted.json == {"gateway_id": gw["id"], "org_id": org.id}

        ids = [int(f.id) for f in stream.seen if f.id is not None]
        assert ids == list(range(1, len(ids) + 1)), ids  # increasing per stream, from 1

        # The other organisation's stream got nothing of this: its own event, which comes
        # after all of the above, is the first it sees.
        theirs = other.register(name="theirs")
        first = elsewhere.next("gateway.registered")
        assert first.json["gateway_id"] == theirs["id"]
        assert [f for f in elsewhere.seen if f.event] == [first]
        assert first.id == "1"


def test_deployment_progress_streams_ids_to_its_organisation_only(
    org: Org, superuser: httpx.Client
) -> None:
    """Every step of a deployment (created, a batch sent, paused, cancelled) is a
    ``deployment.progress`` frame with its ids, to the organisation's streams only."""
    other = new_org(org.server, superuser)
    gw = org.register(name="progressing", labels={"ring": "canary"})
    config = org.admin.post("/api/v1/configs", params={"org_id": org.id}, json={"name": "live"})
    assert config.status_code == 201, config.text
    version = org.admin.post(
        f"/api/v1/configs/{config.json()['id']}/versions",
        params={"org_id": org.id},
        json={"config_yaml": COLLECTOR_YAML},
    )
    assert version.status_code == 201, version.text
    with (
        EventStream.open(org.server, org.id, headers=bearer(org)) as stream,
        EventStream.open(org.server, other.id, headers=bearer(other)) as elsewhere,
    ):
        assert stream.next().retry == "3000"
        assert elsewhere.next().retry == "3000"
        resp = org.admin.post(
            "/api/v1/deployments",
            params={"org_id": org.id},
            json={
                "config_id": config.json()["id"],
                "target": {"selector": "ring=canary"},
                "strategy": {"type": "staged", "batches": [1, "100%"]},
            },
        )
        assert resp.status_code == 201, resp.text
        deployment_id = resp.json()["id"]
        progress = stream.next("deployment.progress", deployment_id=deployment_id)
        assert progress.json == {"deployment_id": deployment_id, "org_id": org.id}

        for action in ("pause", "cancel"):
            resp = org.admin.post(
                f"/api/v1/deployments/{deployment_id}/{action}", params={"org_id": org.id}
            )
            assert resp.status_code == 200, resp.text
            frame = stream.next("deployment.progress", deployment_id=deployment_id)
            assert frame.json == {"deployment_id": deployment_id, "org_id": org.id}

        theirs = other.register(name="theirs")
        first = elsewhere.next("gateway.registered")
        assert first.json["gateway_id"] == theirs["id"]
        assert [f.event for f in elsewhere.seen if f.event] == ["gateway.registered"]
        resp = org.admin.get(
            f"/api/v1/deployments/{deployment_id}/gateways", params={"org_id": org.id}
        )
        assert [t["gateway_id"] for t in resp.json()["items"]] == [gw["id"]]


def test_the_stream_takes_a_session_cookie_or_a_bearer_credential_of_a_viewer(
    org: Org, superuser: httpx.Client
) -> None:
    email, password = new_member(org, "viewer")
    cookies = session_cookies(org.server, email, password)
    with EventStream.open(org.server, org.id, cookies=cookies) as stream:
        assert stream.response.status_code == 200
        gw = org.register()
        stream.next("gateway.registered", gateway_id=gw["id"])
    key = org.admin.post(
        "/api/v1/api-keys", params={"org_id": org.id}, json={"name": "events", "role": "viewer"}
    ).json()["key"]
    with EventStream(org.server.url, headers={"Authorization": f"Bearer {key}"}) as stream:
        assert stream.response.status_code == 200  # an API key's one org needs no org_id
        gw = org.register()
        stream.next("gateway.registered", gateway_id=gw["id"])

    other = new_org(org.server, superuser)
    for kwargs, status, detail in (
        ({}, 401, "Not authenticated"),
        ({"headers": {"Authorization": "Bearer nonsense"}}, 401, "Invalid credentials"),
        ({"cookies": {"flowgate_session": "nonsense"}}, 401, "Session expired; sign in again"),
        ({"cookies": cookies, "org_id": other.id}, 404, "Organization not found"),
    ):
        org_id = str(kwargs.pop("org_id", org.id))
        with EventStream.open(org.server, org_id, **kwargs) as refused:
            assert refused.response.status_code == status, kwargs
            assert refused.response.json() == {"detail": detail}


def test_pings_revalidation_and_shutdown_end_streams_cleanly(make_server: Any) -> None:
    live: LiveServer = make_server(
        FLOWGATE_EVENTS_PING_SECONDS="0.5", FLOWGATE_EVENTS_REVALIDATE_SECONDS="1"
    )
    admin = client(live, login(live, ADMIN_EMAIL, ADMIN_PASSWORD))
    org_id = admin.get("/api/v1/auth/me").json()["organizations"][0]["id"]
    email = f"p-{uuid.uuid4().hex[:8]}@example.com"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    resp = admin.post(
        "/api/v1/users",
        params={"org_id": org_id},
        json={"email": email, "password": password, "role": "viewer"},
    )
    assert resp.status_code == 201, resp.text
    cookies = session_cookies(live, email, password)

    with EventStream.open(live, org_id, cookies=cookies) as stream:
        ping = stream.next(timeout=10)
        while not ping.comments:
            ping = stream.next(timeout=10)
        assert ping.comments == ["ping"] and ping.event is None
        # Revalidated while open: after a password change the session may not go on listening.
        with client(live, login(live, email, password)) as person:
            resp = person.post(
                "/api/v1/auth/password",
                json={"current_password": password, "new_password": password + "-new"},
            )
            assert resp.status_code == 200, resp.text
        stream.wait_ended()

    # Removed from the organisation: likewise.
    token = login(live, email, password + "-new")
    with EventStream.open(live, org_id, headers={"Authorization": f"Bearer {token}"}) as stream:
        assert stream.response.status_code == 200
        me = admin.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        resp = admin.delete(f"/api/v1/users/{me.json()['id']}", params={"org_id": org_id})
        assert resp.status_code == 204, resp.text
        stream.wait_ended()

    # Shutdown: open streams end at once instead of holding up the graceful stop.
    with EventStream.open(live, org_id, headers=dict(admin.headers)) as stream:
        assert stream.next().retry == "3000"
        live.stop()
        stream.wait_ended()
    assert "timeout graceful shutdown exceeded" not in live.full_log()
    assert "Traceback" not in live.full_log()


def test_an_event_on_one_replica_reaches_streams_on_the_other(
    replicas: tuple[LiveServer, LiveServer],  # noqa: F811
) -> None:
    a, b = replicas
    org = new_org(a, superuser_client(a))
    with EventStream.open(b, org.id, headers=bearer(org)) as stream:
        gw = org.register()  # on replica A
        stream.next("gateway.registered", gateway_id=gw["id"])
        assert org.heartbeat(gw).status_code == 200  # A's presence flush publishes the change
        status = stream.next("gateway.status", gateway_id=gw["id"])
        assert (status.json["status"], status.json["health"]) == ("active", "healthy")


async def test_a_slow_client_is_dropped_with_overflow_not_buffered_forever(
    tmp_path: Path,
) -> None:
    """In process: the hub, its bounded queue and the SSE body, without a socket's buffers
    between them (a real client would need megabytes of events to fill those first)."""
    from flowgate.core.events import GatewayRegistered
    from flowgate.core.settings import Settings
    from flowgate.events.hub import EventHub

    settings = Settings(secret_key="k" * 40, data_dir=tmp_path)

    def no_database() -> Any:
        raise AssertionError("the hub needs no database for these events")

    hub = EventHub(settings, no_database, queue_limit=3)
    org_id, other_org = uuid.uuid4(), uuid.uuid4()
    slow, fine = hub.open(org_id), hub.open(other_org)

    async def allowed() -> bool:
        return True

    body = slow.sse(60, 60, allowed, hub.detach)
    assert await anext(body) == b"retry: 3000\n\n"
    for _ in range(4):  # one more than the queue holds, nothing read meanwhile
        await hub.on_registered(GatewayRegistered(uuid.uuid4(), org_id, True))
    await hub.on_registered(GatewayRegistered(uuid.uuid4(), other_org, True))

    async def rest_of(stream_body: Any) -> list[bytes]:
        return [chunk async for chunk in stream_body]

    rest = await asyncio.wait_for(rest_of(body), 5)
    assert rest == [b'id: 1\nevent: overflow\ndata: {"org_id":"' + str(org_id).encode() + b'"}\n\n']
    assert hub.count() == 1  # the slow stream is gone; the other one is untouched
    other_body = fine.sse(60, 60, allowed, hub.detach)
    await anext(other_body)
    chunk = await asyncio.wait_for(anext(other_body), 5)
    assert chunk.startswith(b"id: 1\nevent: gateway.registered\n")
    hub.close_all()
    assert await asyncio.wait_for(rest_of(other_body), 5) == []
    assert hub.count() == 0
