"""Heartbeats are buffered: database writes follow the flush rate, not the heartbeat rate."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org
from tests.support.db import fetch_row, wait_flushed
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

WS_MESSAGES = 'flowgate_opamp_messages_total{transport="ws"}'


def metric(server: LiveServer, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def gateway_updates(server: LiveServer) -> int | None:
    """Rows updated in the gateways table, as PostgreSQL itself counts them."""
    if not server.database_url:
        return None
    import asyncpg

    dbname = server.database_url.rsplit("/", 1)[1]

    async def go() -> int:
        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
        try:
            value = await conn.fetchval(
                "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'gateways'"
            )
            return int(value or 0)
        finally:
            await conn.close()

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_rest_heartbeats_are_written_in_batches(org: Org) -> None:
    gateways = [org.register() for _ in range(5)]
    for gw in gateways:  # first contact: registered -> active is flushed promptly
        assert org.heartbeat(gw).status_code == 200
    time.sleep(1.5)
    rows_before = metric(org.server, "flowgate_presence_rows_total")
    updates_before = gateway_updates(org.server)
    heartbeats = 0
    with httpx.Client(base_url=org.server.url) as client:
        for _ in range(40):
            for gw in gateways:
                resp = client.post(
                    f"/api/v1/opamp/heartbeat/{gw['instance_id']}",
                    headers={"Authorization": f"Bearer {gw['opamp_token']}"},
                    json={"metrics": {"logs_processed": heartbeats}},
                )
                assert resp.status_code == 200
                heartbeats += 1
    time.sleep(1.5)  # let the last batch land
    rows = metric(org.server, "flowgate_presence_rows_total") - rows_before
    assert 1 <= rows < heartbeats / 4, (rows, heartbeats)
    # Nothing was lost: the last reported value is what the API shows.
    last = org.get(f"/api/v1/gateways/{gateways[-1]['id']}/metrics").json()
    assert last["logs_processed"] == heartbeats - 1
    updates_after = gateway_updates(org.server)
    if updates_before is not None and updates_after is not None:
        time.sleep(1)  # PostgreSQL publishes table statistics with a short delay
        updates_after = gateway_updates(org.server)
        assert updates_after is not None
        assert updates_after - updates_before < heartbeats / 4


async def stored_state(org: Org, gateway_id: str) -> dict[str, Any]:
    """The gateway's ``opamp_state`` column once every buffered write so far has landed."""
    await asyncio.to_thread(wait_flushed, org)
    (raw,) = await asyncio.to_thread(fetch_row, org.server, "gateways", gateway_id, "opamp_state")
    state = json.loads(raw) if isinstance(raw, str) else raw
    assert isinstance(state, dict), raw
    return state


async def test_websocket_heartbeats_do_not_write_state(org: Org) -> None:
    """A bare heartbeat only refreshes presence (batched ``last_seen``); the ``opamp_state``
    snapshot is written when the agent reports a change, and not for heartbeats."""
    gw = org.register()
    agent = await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
    await agent.request(agent.full_state())  # sequence_num 0
    first = await stored_state(org, gw["id"])
    assert first["sequence_num"] == 0 and first["health"]["status"] == "StatusOK"
    messages_before = metric(org.server, WS_MESSAGES)
    rows_before = metric(org.server, "flowgate_presence_rows_total")
    for _ in range(200):
        reply = await agent.request(agent.message())
        assert not reply.flags
    after = await stored_state(org, gw["id"])
    assert metric(org.server, WS_MESSAGES) - messages_before == 200
    rows = metric(org.server, "flowgate_presence_rows_total") - rows_before
    assert 1 <= rows < 50, rows  # presence was written, in a few batches
    # Had any heartbeat rewritten the snapshot, it would carry a later sequence_num.
    assert after == first
    # A change (health) is written with the next flush, sequence number included.
    unhealthy = opamp_pb2.ComponentHealth(healthy=False, status="StatusRecoverableError")
    reply = await agent.request(agent.message(health=unhealthy))
    assert not reply.flags
    changed = await stored_state(org, gw["id"])
    assert changed["sequence_num"] == 201
    assert changed["health"]["status"] == "StatusRecoverableError"
    assert changed["effective_config"] == first["effective_config"]  # merged, not cleared
    await agent.close()


def test_gc_is_measured_and_survivors_are_frozen(org: Org) -> None:
    # The server freezes survivors at start-up and every FLOWGATE_GC_FREEZE_SECONDS (default 20).
    assert metric(org.server, "flowgate_gc_frozen_objects") > 10_000
    assert metric(org.server, 'flowgate_gc_collections_total{generation="0"}') > 0
