"""Concurrent enrolments of one instance id, on REST and native OpAMP, end in one gateway and a
correct answer for every caller: 201/200 or 409 on REST; on OpAMP a normal reply or a
retry-later answer (503 + Retry-After), never UNKNOWN "internal error" (which tells an agent not
to retry)."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import httpx

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, anonymous
from tests.support.db import query
from tests.support.ws_agent import WsAgent

ROUNDS = 5
CONCURRENCY = 8


def gateways_with(org: Org, instance_id: str) -> int:
    rows = query(org.server, "SELECT count(*) FROM gateways WHERE instance_id = ?", instance_id)
    return int(rows[0][0])


def test_concurrent_rest_registrations_of_one_instance_id(org: Org) -> None:
    token = org.registration_token(max_uses=None)
    for _ in range(ROUNDS):
        instance_id = f"race-{uuid.uuid4().hex[:8]}"

        def register(_: int, instance_id: str = instance_id) -> httpx.Response:
            return anonymous(org.server).post(
                "/api/v1/gateways",
                json={"name": "racer", "instance_id": instance_id},
                headers={"Authorization": f"Bearer {token}"},
            )

        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            answers = list(pool.map(register, range(CONCURRENCY)))
        codes = sorted(r.status_code for r in answers)
        assert set(codes) <= {200, 201, 409}, [(r.status_code, r.text) for r in answers]
        assert codes.count(201) == 1, codes
        for r in answers:
            if r.status_code == 409:
                assert "retry" in r.json()["detail"]
        assert gateways_with(org, instance_id) == 1
        ids = {r.json()["id"] for r in answers if r.status_code in (200, 201)}
        assert len(ids) == 1


def enrol_over_http(org: Org, token: str, instance_id: str) -> list[tuple[int, int | None]]:
    """One agent enrolling over plain HTTP until it gets a normal reply; every answer seen."""
    agent = WsAgent("unused", token, instance_id=instance_id)
    seen: list[tuple[int, int | None]] = []
    http = anonymous(org.server)
    for _ in range(20):
        msg = agent.full_state()
        resp = http.post(
            "/v1/opamp",
            content=msg.SerializeToString(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/x-protobuf",
            },
        )
        if resp.status_code != 200:
            assert resp.status_code == 503, resp.text
            assert int(resp.headers["retry-after"]) >= 1
            seen.append((503, None))
            time.sleep(0.2)  # a real agent honours Retry-After; the test is impatient
            continue
        reply = opamp_pb2.ServerToAgent()
        reply.ParseFromString(resp.content)
        if reply.HasField("error_response"):
            seen.append((200, reply.error_response.type))
            time.sleep(0.2)
            continue
        seen.append((200, None))
        return seen
    raise AssertionError(f"agent never enrolled: {seen}")


def test_concurrent_opamp_enrolments_of_one_instance_id(org: Org) -> None:
    token = org.registration_token(max_uses=None)
    for _ in range(ROUNDS):
        instance_id = f"race-{uuid.uuid4().hex[:8]}"
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            runs = list(
                pool.map(
                    enrol_over_http,
                    [org] * CONCURRENCY,
                    [token] * CONCURRENCY,
                    [instance_id] * CONCURRENCY,
                )
            )
        errors = [kind for run in runs for _, kind in run if kind is not None]
        assert opamp_pb2.ServerErrorResponseType_Unknown not in errors, runs
        assert gateways_with(org, instance_id) == 1


def post_opamp(org: Org, token: str, msg: opamp_pb2.AgentToServer) -> httpx.Response:
    return anonymous(org.server).post(
        "/v1/opamp",
        content=msg.SerializeToString(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )


def test_a_used_up_registration_token_is_a_401_for_a_new_http_agent(org: Org) -> None:
    token = org.registration_token(max_uses=1)
    first = WsAgent("unused", token, instance_id=f"first-{uuid.uuid4().hex[:6]}")
    assert enrol_over_http(org, token, first.instance_id)[-1] == (200, None)
    second = WsAgent("unused", token, instance_id=f"second-{uuid.uuid4().hex[:6]}")
    refused = post_opamp(org, token, second.full_state())
    assert refused.status_code == 401, refused.content
    assert refused.json() == {"detail": "Invalid or expired registration token"}
    assert gateways_with(org, second.instance_id) == 0
    # The agent that used it may come back with it (a restart before it stored its own token).
    again = WsAgent("unused", token, instance_id=first.instance_id)
    assert post_opamp(org, token, again.full_state()).status_code == 200
    assert gateways_with(org, first.instance_id) == 1
