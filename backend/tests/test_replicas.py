"""Two replicas sharing PostgreSQL and Redis: what happens on one reaches the agents on the other
(config pushes, deactivations), and no buffered write on one undoes a change made on the other."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.api import Org, new_org, superuser_client
from tests.support.db import fetch_row
from tests.support.polling import wait_for
from tests.support.server import (
    LiveServer,
    create_pg_database,
    drop_pg_database,
    pg_available,
)
from tests.support.ws_agent import WsAgent

REDIS = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

COLLECTOR_YAML = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    if not (pg_available() and redis_available()):
        if IN_CI:
            pytest.fail("PostgreSQL and Redis are required when CI=true")
        pytest.skip("needs PostgreSQL and Redis on 127.0.0.1")
    name, url = create_pg_database()
    secret = uuid.uuid4().hex * 2
    env = {"FLOWGATE_REDIS_URL": REDIS}
    a = LiveServer(data_dir=tmp_path / "a", database_url=url, extra_env=env, secret_key=secret)
    b = LiveServer(data_dir=tmp_path / "b", database_url=url, extra_env=env, secret_key=secret)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        drop_pg_database(name)


async def test_push_on_one_replica_reaches_agent_on_the_other(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    org = new_org(a, superuser_client(a))
    gw = org.register()
    async with WsAgent(b.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        await agent.request(agent.full_state())
        # Replica A learns from the database that the agent is live on a WebSocket.
        await asyncio.to_thread(
            wait_for,
            lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active",
        )
        resp = await asyncio.to_thread(
            org.admin.put,
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["delivery"] == "pushed"  # to its socket, held by replica B
        pushed = await agent.recv(timeout=10)
        assert pushed.remote_config.config.config_map[""].body.decode() == COLLECTOR_YAML
    # And replica A sees what replica B's agent reported (shared database).
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["transport"] == "opamp-ws")


async def test_deactivation_on_one_replica_closes_the_socket_on_the_other(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    org = new_org(a, superuser_client(a))
    gw = org.register()
    async with WsAgent(b.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        await agent.request(agent.full_state())
        await asyncio.to_thread(
            wait_for,
            lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active",
        )
        resp = await asyncio.to_thread(
            org.admin.post, f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id}
        )
        assert resp.status_code == 200, resp.text
        started = time.monotonic()
        assert agent.ws is not None
        await asyncio.wait_for(agent.ws.wait_closed(), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert agent.ws.close_code == 1008
    # Its token is refused on the other replica too, at once, and nothing revives it.
    b_org = Org(server=b, id=org.id, name=org.name, admin=org.admin)
    refused = await asyncio.to_thread(b_org.heartbeat, gw)
    assert refused.status_code == 401
    await asyncio.sleep(1.5)  # several presence flushes on both replicas
    for replica in (a, b):
        row = await asyncio.to_thread(fetch_row, replica, "gateways", gw["id"], "status")
        assert row == ("inactive",)


def test_rest_heartbeats_through_one_replica_never_undo_a_deactivation_on_the_other(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    """Heartbeats keep flowing through replica B while replica A deactivates the gateways; B
    must stop accepting them at once and nothing B buffered may write "active" back."""
    a, b = replicas
    org = new_org(a, superuser_client(a))
    b_org = Org(server=b, id=org.id, name=org.name, admin=org.admin)
    gateways = [org.register() for _ in range(20)]
    stop = threading.Event()
    after_refusal: list[int] = []

    def beat(gw: dict[str, object]) -> None:
        refused = False
        while not stop.is_set():
            code = b_org.heartbeat(gw).status_code
            if refused:
                after_refusal.append(code)
            refused = refused or code == 401

    threads = [threading.Thread(target=beat, args=(gw,)) for gw in gateways]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for gw in gateways:
            resp = org.admin.post(
                f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id}
            )
            assert resp.status_code == 200, resp.text
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert after_refusal and set(after_refusal) == {401}  # once refused, refused for good
    time.sleep(1.5)
    for gw in gateways:
        assert fetch_row(b, "gateways", gw["id"], "status", "opamp_token") == ("inactive", None)
        assert org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "inactive"
