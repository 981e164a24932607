"""Overload answers: 503 + Retry-After on HTTP polls and WebSocket upgrades, UNAVAILABLE on an
open WebSocket; agents under the limits are served normally."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import new_org, superuser_client
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

UNAVAILABLE = opamp_pb2.ServerErrorResponseType_Unavailable


def poll(server: LiveServer, token: str) -> httpx.Response:
    body = opamp_pb2.AgentToServer(instance_uid=uuid.uuid4().bytes, capabilities=1)
    return httpx.post(
        server.url + "/v1/opamp",
        content=body.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"},
    )


async def test_overload_is_answered_with_retry_after(make_server: Any) -> None:
    live: LiveServer = make_server(
        FLOWGATE_OPAMP_MAX_MESSAGES_PER_SECOND="3",
        FLOWGATE_OPAMP_MAX_CONNECTIONS="1",
        FLOWGATE_OPAMP_RETRY_AFTER_SECONDS="42",
        FLOWGATE_OPAMP_RETRY_JITTER="0",  # exact values here; test_reconnect_storm: the jitter
    )
    org = new_org(live, superuser_client(live))
    token = org.register()["opamp_token"]
    statuses = [poll(live, token) for _ in range(12)]
    codes = {r.status_code for r in statuses}
    assert codes == {200, 503}, codes
    refused = next(r for r in statuses if r.status_code == 503)
    assert refused.headers["retry-after"] == "42"
    assert refused.json() == {"detail": "server is overloaded; retry later"}

    first = await WsAgent(live.ws_url + "/v1/opamp", token).connect()
    with pytest.raises(InvalidStatus) as info:
        await WsAgent(live.ws_url + "/v1/opamp", org.register()["opamp_token"]).connect()
    assert info.value.response.status_code == 503
    assert info.value.response.headers["Retry-After"] == "42"
    assert json.loads(info.value.response.body) == {"detail": "server is at its connection limit"}

    replies = [await first.request(first.full_state()) for _ in range(8)]
    busy = [r for r in replies if r.HasField("error_response")]
    assert busy, "an open WebSocket over the rate gets UNAVAILABLE"
    assert busy[0].error_response.type == UNAVAILABLE
    assert busy[0].error_response.retry_info.retry_after_nanoseconds == 42 * 10**9
    await first.close()


def test_enrolment_storm_is_admitted_or_deferred_never_failed(make_server: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from flowgate.opamp.proto import anyvalue_pb2

    live: LiveServer = make_server(
        FLOWGATE_OPAMP_DB_CONCURRENCY="1",
        FLOWGATE_OPAMP_MAX_QUEUED="2",
        FLOWGATE_OPAMP_RETRY_AFTER_SECONDS="7",
        FLOWGATE_OPAMP_RETRY_JITTER="0",
    )
    org = new_org(live, superuser_client(live))
    token = org.registration_token(max_uses=None)

    def enrol(i: int) -> httpx.Response:
        desc = opamp_pb2.AgentDescription(
            non_identifying_attributes=[
                anyvalue_pb2.KeyValue(
                    key="host.name", value=anyvalue_pb2.AnyValue(string_value=f"storm-{i:02d}")
                )
            ]
        )
        msg = opamp_pb2.AgentToServer(
            instance_uid=uuid.UUID(int=i + 1).bytes, capabilities=1, agent_description=desc
        )
        return httpx.post(
            live.url + "/v1/opamp",
            content=msg.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"},
            timeout=30,
        )

    pending = list(range(40))
    deferred_seen = False
    for _round in range(20):
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(enrol, pending))
        codes = {r.status_code for r in results}
        assert codes <= {200, 503}, codes
        for r in results:
            if r.status_code == 503:
                deferred_seen = True
                # The queue's own estimate of its drain time, never past the setting.
                assert 1 <= int(r.headers["retry-after"]) <= 7, r.headers["retry-after"]
            else:
                assert not opamp_pb2.ServerToAgent.FromString(r.content).HasField("error_response")
        pending = [i for i, r in zip(pending, results, strict=True) if r.status_code == 503]
        if not pending:
            break
    assert not pending, "every agent is eventually enrolled"
    assert deferred_seen, "with one database slot and a queue of two, some were deferred"
    names = set()
    cursor = None
    while True:
        page = org.get("/api/v1/gateways", limit=100, **({"cursor": cursor} if cursor else {}))
        names |= {g["name"] for g in page.json()["items"]}
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert names == {f"storm-{i:02d}" for i in range(40)}
