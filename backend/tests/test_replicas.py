"""Two replicas sharing PostgreSQL and Redis: a push on one reaches a WebSocket on the other."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.api import new_org, superuser_client
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
        resp = await asyncio.to_thread(
            org.admin.put,
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["delivery"] == "queued"  # replica A holds no connection for it
        pushed = await agent.recv(timeout=10)
        assert pushed.remote_config.config.config_map[""].body.decode() == COLLECTOR_YAML
    # And replica A sees what replica B's agent reported (shared database).
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["transport"] == "opamp-ws")
