"""A reconnect storm after a restart: hundreds of known agents come back at once with their OpAMP
tokens. Every one is served its own gateway (identity and stored state are read in batches, never
mixed up), a gateway revoked meanwhile is refused inside the same batch, and the database sees a
handful of reads instead of one transaction per agent. "Come back later" answers carry a
jittered Retry-After, so refused agents do not all return in the same second."""

from __future__ import annotations

import asyncio
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from websockets.exceptions import InvalidStatus

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

N = 300
#: Every CONFIGURED-th gateway gets a configuration of its own before the restart.
CONFIGURED = 10
REVOKED = 137  # the gateway deactivated while the server is down


def config_yaml(i: int) -> str:
    return (
        "receivers:\n  otlp:\n    protocols:\n      grpc: {}\n"
        f"exporters:\n  debug:\n    verbosity: detailed\n    sampling_initial: {i + 1}\n"
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
    )


def batched(server: LiveServer) -> dict[str, float]:
    """flowgate_opamp_batched_{reads,keys}_total by read, from the server's /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for kind, read, value in re.findall(
        r'^flowgate_opamp_batched_(reads|keys)_total\{read="(\w+)"\} (\S+)$', text, re.M
    ):
        found[f"{kind}:{read}"] = float(value)
    return found


def pg_stat(server: LiveServer, sql: str) -> int | None:
    """One number about the server's PostgreSQL database (``$1`` is its name; None on SQLite)."""
    if not server.database_url:
        return None
    import asyncpg

    name = server.database_url.rsplit("/", 1)[1]

    async def go() -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres")
        try:
            # Stats of other backends reach the views when they go idle (at most ~1 s later).
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            return int(await conn.fetchval(sql, name))
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def pg_commits(server: LiveServer) -> int | None:
    """Committed transactions in the server's PostgreSQL database (None on SQLite)."""
    return pg_stat(server, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1")


def pg_connections(server: LiveServer) -> int | None:
    """Connections the server holds open to its PostgreSQL database (None on SQLite)."""
    return pg_stat(server, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1")


def register_fleet(org: Org) -> list[dict[str, Any]]:
    token = org.registration_token(max_uses=None)
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: org.register(f"storm-{i:04d}", token), range(N)))


async def reconnect(
    url: str, gw: dict[str, Any], uid: bytes, i: int
) -> opamp_pb2.ServerToAgent | int:
    """One agent coming back: its reply to full state, or the HTTP status of a refused upgrade."""
    agent = WsAgent(url, gw["opamp_token"], uid=uid, version=f"1.{i}.0", name=f"host-{i}")
    try:
        await agent.connect()
    except InvalidStatus as exc:
        return exc.response.status_code
    try:
        await agent.send(agent.full_state())
        return await agent.recv(timeout=30)
    finally:
        await agent.close()


async def test_reconnect_storm_after_restart(make_server: Any) -> None:
    live: LiveServer = make_server(FLOWGATE_FLUSH_INTERVAL_SECONDS="0.3")
    org = new_org(live, superuser_client(live))
    gateways = await asyncio.to_thread(register_fleet, org)
    for i in range(0, N, CONFIGURED):
        resp = org.admin.put(
            f"/api/v1/gateways/{gateways[i]['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": config_yaml(i)},
        )
        assert resp.status_code == 200, resp.text
    uids = [uuid.uuid4().bytes for _ in range(N)]
    url = live.ws_url + "/v1/opamp"

    async def first_contact(i: int) -> None:  # links the uid and the transport
        async with WsAgent(url, gateways[i]["opamp_token"], uid=uids[i], version="0.1.0") as a:
            await a.send(a.full_state())
            reply = await a.recv(timeout=30)
            assert not reply.HasField("error_response"), reply

    for start in range(0, N, 50):
        await asyncio.gather(*(first_contact(i) for i in range(start, min(N, start + 50))))
    await asyncio.to_thread(
        wait_for,
        lambda: all(
            g["status"] == "inactive" and g["agent_version"] == "0.1.0"
            for g in org.get("/api/v1/gateways", limit=N).json()["items"]
        ),
        20,
    )

    live.stop()
    revoked = gateways[REVOKED]
    live.start()
    # The restarted server opened its pool before it was ready, not during the storm: a
    # connection opened on a saturated event loop can exceed the connect timeout, failing a
    # whole batch of agents. opamp_db_concurrency (6) + 2, the flushers' share.
    warm = pg_connections(live)
    assert warm is None or warm >= 8, f"{warm} connections open when the server is ready"
    resp = org.admin.post(f"/api/v1/gateways/{revoked['id']}/deactivate", params={"org_id": org.id})
    assert resp.status_code == 200, resp.text
    before, commits_before = batched(live), pg_commits(live)

    results = await asyncio.gather(*(reconnect(url, gateways[i], uids[i], i) for i in range(N)))

    assert results[REVOKED] == 401, "the revoked gateway is refused inside the batch"
    for i, result in enumerate(results):
        if i == REVOKED:
            continue
        assert isinstance(result, opamp_pb2.ServerToAgent), (i, result)
        assert not result.HasField("error_response"), (i, result.error_response)
        offered = result.remote_config.config.config_map[""].body.decode()
        assert offered == (config_yaml(i) if i % CONFIGURED == 0 else ""), i
    # Each gateway recorded its own agent's report (no mix-up between batched agents).
    await asyncio.to_thread(
        wait_for,
        lambda: (
            {
                g["instance_id"]: g["agent_version"]
                for g in org.get("/api/v1/gateways", limit=N).json()["items"]
            }
            == {
                g["instance_id"]: ("0.1.0" if i == REVOKED else f"1.{i}.0")
                for i, g in enumerate(gateways)
            }
        ),
        20,
    )

    after = batched(live)
    reads = sum(
        after.get(f"reads:{r}", 0) - before.get(f"reads:{r}", 0) for r in ("identity", "state")
    )
    keys = after.get("keys:identity", 0) - before.get("keys:identity", 0)
    assert keys >= N - 10, (before, after)  # every cold identity went through a batch
    assert reads <= N / 10, f"{reads:.0f} batched reads for {N} agents: not batched"
    if commits_before is not None:
        await asyncio.sleep(1.5)
        commits = (pg_commits(live) or 0) - commits_before
        # One transaction per agent would be >= 2 * N (identity + state); a batch is one.
        assert commits < N / 3, f"{commits} PostgreSQL transactions for {N} reconnects"


async def test_retry_after_is_jittered(make_server: Any) -> None:
    live: LiveServer = make_server(
        FLOWGATE_OPAMP_MAX_MESSAGES_PER_SECOND="1", FLOWGATE_OPAMP_RETRY_AFTER_SECONDS="10"
    )
    org = new_org(live, superuser_client(live))
    gw = org.register()
    body = opamp_pb2.AgentToServer(instance_uid=uuid.uuid4().bytes, capabilities=1)
    seen: list[int] = []
    async with httpx.AsyncClient(base_url=live.url) as http:
        for _ in range(40):
            resp = await http.post(
                "/v1/opamp",
                content=body.SerializeToString(),
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Authorization": f"Bearer {gw['opamp_token']}",
                },
            )
            if resp.status_code == 503:
                seen.append(int(resp.headers["retry-after"]))
    async with WsAgent(live.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        for _ in range(20):
            reply = await agent.request(agent.message())
            if reply.HasField("error_response"):
                seen.append(reply.error_response.retry_info.retry_after_nanoseconds // 10**9)
    assert len(seen) >= 40, seen
    # FLOWGATE_OPAMP_RETRY_JITTER (default 0.5): 10 s give or take 5 s, in whole seconds.
    assert all(5 <= s <= 15 for s in seen), seen
    assert len(set(seen)) > 1, "every agent told to come back in the same second"
