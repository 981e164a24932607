"""Deployments end to end with real agents: FlowGate's WebSocket test agent, REST gateways
heartbeating what they applied, and staged rollouts that stop and roll back.

Each agent here behaves like a collector: it applies what it is sent and reports APPLIED, or
reports FAILED with an error when told to fail a given config.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, anonymous
from tests.support.db import query
from tests.support.deploys import deploy, deployment, labelled_gateway, targets, template_with
from tests.support.polling import wait_for
from tests.support.ws_agent import WsAgent

GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)
BAD = GOOD.replace("debug: {}", "debug: {verbosity: loud}")


class ApplyingAgent:
    """A WebSocket agent that applies every remote config it receives (reports APPLIED), or
    reports FAILED for bodies containing ``fail_on``. Records every body it was sent."""

    def __init__(self, org: Org, token: str, labels: dict[str, str], fail_on: str | None = None):
        self.org = org
        self.agent = WsAgent(org.server.ws_url + "/v1/opamp", token)
        self.labels = labels
        self.fail_on = fail_on
        self.received: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.agent.connect()
        reply = await self.agent.request(self.agent.full_state())
        await self._apply(reply)
        self.task = asyncio.create_task(self._loop())

    async def _apply(self, msg: opamp_pb2.ServerToAgent) -> None:
        if not msg.HasField("remote_config"):
            return
        body = msg.remote_config.config.config_map[""].body.decode()
        self.received.append(body)
        failing = self.fail_on is not None and self.fail_on in body
        status = (
            opamp_pb2.RemoteConfigStatuses_FAILED
            if failing
            else opamp_pb2.RemoteConfigStatuses_APPLIED
        )
        self.agent.remote_config_status = opamp_pb2.RemoteConfigStatus(
            last_remote_config_hash=msg.remote_config.config_hash,
            status=status,
            error_message="exporter debug: unknown verbosity 'loud'" if failing else "",
        )
        await self.agent.send(
            self.agent.message(remote_config_status=self.agent.remote_config_status)
        )

    async def _loop(self) -> None:
        assert self.agent.ws is not None
        while True:
            try:
                msg = await self.agent.recv(timeout=3600)
            except Exception:
                return
            await self._apply(msg)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.agent.close()


@contextlib.asynccontextmanager
async def agents(
    org: Org, gateways: list[dict[str, Any]], fail_on: dict[str, str] | None = None
) -> AsyncIterator[dict[str, ApplyingAgent]]:
    fail_on = fail_on or {}
    running = {
        gw["id"]: ApplyingAgent(org, gw["opamp_token"], {}, fail_on.get(gw["id"]))
        for gw in gateways
    }
    try:
        for agent in running.values():
            await agent.start()
        yield running
    finally:
        for agent in running.values():
            await agent.stop()


async def until(probe: Any, timeout: float = 15) -> Any:
    return await asyncio.to_thread(wait_for, probe, timeout)


async def test_deploy_to_a_selector_reaches_every_matching_agent(org: Org) -> None:
    prod = [labelled_gateway(org, env="prod") for _ in range(3)]
    dev = labelled_gateway(org, env="dev")
    config_id = template_with(org, GOOD)
    async with agents(org, [*prod, dev]) as running:
        resp = await asyncio.to_thread(
            deploy, org, config_id=config_id, target={"selector": "env=prod"}
        )
        assert resp.status_code == 201, resp.text
        did = resp.json()["id"]
        done = await until(lambda: deployment(org, did)["state"] == "completed")
        assert done
        info = deployment(org, did)
        assert info["counts"]["total"] == 3 and info["counts"]["applied"] == 3
        for gw in prod:
            assert running[gw["id"]].received == [GOOD]
        assert running[dev["id"]].received == []
        cfg = org.get(f"/api/v1/gateways/{prod[0]['id']}/config").json()
        assert (cfg["config_version"], cfg["deployment_id"], cfg["config_id"]) == (
            1,
            did,
            config_id,
        )


async def test_staged_rollout_whose_canary_fails_stops_and_rolls_back(org: Org) -> None:
    canary = labelled_gateway(org, ring="canary")
    others = [labelled_gateway(org, ring="main") for _ in range(4)]
    config_id = template_with(org, GOOD, BAD)
    async with agents(org, [canary, *others], fail_on={canary["id"]: "loud"}) as running:
        first = await asyncio.to_thread(
            deploy, org, config_id=config_id, version=1, target={"all": True}
        )
        assert first.status_code == 201, first.text
        await until(lambda: deployment(org, first.json()["id"])["state"] == "completed")
        resp = await asyncio.to_thread(
            deploy,
            org,
            config_id=config_id,
            version=2,
            target={"all": True},
            strategy={
                "type": "staged",
                "batches": [1, "50%", "100%"],
                "max_failed": 0,
                "batch_timeout_seconds": 60,
                "canary_selector": "ring=canary",
            },
            auto_rollback=True,
        )
        assert resp.status_code == 201, resp.text
        did = resp.json()["id"]
        await until(lambda: deployment(org, did)["state"] == "rolled_back")
        info = deployment(org, did)
        assert "failed" in (info["reason"] or "")
        rows = targets(org, did)
        assert rows[canary["id"]]["state"] == "failed"
        assert "unknown verbosity" in (rows[canary["id"]]["error_message"] or "")
        assert {rows[g["id"]]["state"] for g in others} == {"pending"}
        for gw in others:  # nobody outside the first batch ever saw the bad version
            assert running[gw["id"]].received == [GOOD]
        # The canary is put back on version 1 by a recorded rollback deployment.
        listed = org.get("/api/v1/deployments").json()["items"]
        rollback = next(d for d in listed if d["rollback_of"] == did)
        await until(lambda: deployment(org, rollback["id"])["state"] == "completed")
        assert running[canary["id"]].received == [GOOD, BAD, GOOD]
        cfg = org.get(f"/api/v1/gateways/{canary['id']}/config").json()
        assert cfg["config_version"] == 1


async def test_pause_resume_and_cancel(org: Org) -> None:
    # Batches go out in name order: p0, then p1, then p2 and p3. Nobody is online at first.
    gws = [labelled_gateway(org, name=f"p{i}", tier="edge") for i in range(4)]
    config_id = template_with(org, GOOD)
    resp = await asyncio.to_thread(
        deploy,
        org,
        config_id=config_id,
        target={"selector": "tier=edge"},
        strategy={"type": "staged", "batches": [1, 2, "100%"], "batch_timeout_seconds": 600},
    )
    assert resp.status_code == 201, resp.text
    did = resp.json()["id"]
    assert (resp.json()["current_batch"], resp.json()["counts"]["sent"]) == (1, 1)
    paused = org.admin.post(f"/api/v1/deployments/{did}/pause", params={"org_id": org.id})
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    again = org.admin.post(f"/api/v1/deployments/{did}/pause", params={"org_id": org.id})
    assert again.status_code == 409
    # p0 comes online and applies what it was assigned; the paused rollout does not move on.
    async with agents(org, gws[:1]) as running:
        await until(lambda: deployment(org, did)["counts"]["applied"] == 1)
        await asyncio.sleep(1.5)  # several driver ticks
        info = deployment(org, did)
        assert (info["state"], info["current_batch"]) == ("paused", 1)
        resumed = org.admin.post(f"/api/v1/deployments/{did}/resume", params={"org_id": org.id})
        assert resumed.status_code == 200 and resumed.json()["state"] == "rolling_out"
        # p1 is offline: it waits with the version assigned ("sent"), and the batch with it.
        await until(lambda: deployment(org, did)["current_batch"] == 2)
        assert deployment(org, did)["counts"]["sent"] == 1
        cancelled = org.admin.post(f"/api/v1/deployments/{did}/cancel", params={"org_id": org.id})
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        await asyncio.sleep(1.5)
        info = deployment(org, did)
        assert info["state"] == "cancelled" and info["counts"]["pending"] == 2
        assert running[gws[0]["id"]].received == [GOOD]


def test_two_racing_deployments_leave_one_assignment_per_gateway(org: Org) -> None:
    gws = [labelled_gateway(org, race="yes") for _ in range(20)]
    config_id = template_with(org, GOOD, GOOD.replace("grpc: {}", "http: {}"))
    results: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def run(version: int) -> None:
        barrier.wait()
        results.append(
            deploy(org, config_id=config_id, version=version, target={"selector": "race=yes"})
        )

    threads = [threading.Thread(target=run, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201, 201], [r.text for r in results]
    rows = query(
        org.server,
        "SELECT a.gateway_id, a.deployment_id FROM assignments a WHERE a.org_id = ?",
        uuid.UUID(org.id),
    )
    owner = {str(uuid.UUID(str(g))): str(uuid.UUID(str(d))) for g, d in rows}
    assert set(owner) == {g["id"] for g in gws}
    assert len(set(owner.values())) == 1  # the later one took every gateway
    winner = next(iter(owner.values()))
    loser = next(r.json()["id"] for r in results if r.json()["id"] != winner)
    assert deployment(org, winner)["counts"]["sent"] == 20
    assert deployment(org, loser)["counts"]["superseded"] == 20


def test_rest_gateways_report_what_they_applied(org: Org) -> None:
    gw = labelled_gateway(org, kind="rest")
    config_id = template_with(org, GOOD)
    resp = deploy(org, config_id=config_id, target={"gateway_ids": [gw["id"]]})
    assert resp.status_code == 201, resp.text
    did = resp.json()["id"]
    auth = {"Authorization": f"Bearer {gw['opamp_token']}"}
    cfg = anonymous(org.server).get(f"/api/v1/opamp/config/{gw['instance_id']}", headers=auth)
    assert (cfg.json()["config_version"], cfg.json()["deployment_id"]) == (1, did)
    assert org.heartbeat(gw, {"config_version": 1}).status_code == 200
    wait_for(lambda: deployment(org, did)["state"] == "completed")
    assert targets(org, did)[gw["id"]]["state"] == "applied"


def test_a_deployment_to_a_gateway_lacking_a_component_is_refused(org: Org) -> None:
    pytest.importorskip("flowgate.configs.validation")
    gw = labelled_gateway(org, kind="x")
    config_id = template_with(org, GOOD)
    other = org.get("/api/v1/deployments").json()
    assert other["items"] == []
    resp = deploy(org, config_id=config_id, target={"gateway_ids": [str(uuid.uuid4())]})
    assert resp.status_code == 404
    assert deploy(org, config_id=str(uuid.uuid4()), target={"all": True}).status_code == 404
    bad = deploy(org, config_id=config_id, target={"all": True, "selector": "a=b"})
    assert bad.status_code == 422
    assert gw


def test_a_template_in_use_cannot_be_deleted(org: Org) -> None:
    gw = labelled_gateway(org, kind="x")
    config_id = template_with(org, GOOD)
    assert deploy(org, config_id=config_id, target={"gateway_ids": [gw["id"]]}).status_code == 201
    resp = org.admin.delete(f"/api/v1/configs/{config_id}", params={"org_id": org.id})
    assert resp.status_code == 409, resp.text
    unused = template_with(org, GOOD)
    gone = org.admin.delete(f"/api/v1/configs/{unused}", params={"org_id": org.id})
    assert gone.status_code == 204


def test_bad_deployment_requests_are_refused_with_a_reason(org: Org) -> None:
    config_id = template_with(org, GOOD)
    labelled_gateway(org, kind="x")
    unknown = deploy(org, config_id=config_id, target={"gateway_ids": [str(uuid.uuid4())]})
    assert unknown.status_code == 404 and "Gateway not found" in unknown.json()["detail"]
    assert deploy(org, config_id=str(uuid.uuid4()), target={"all": True}).status_code == 404
    two = deploy(org, config_id=config_id, target={"all": True, "selector": "a=b"})
    assert two.status_code == 422 and "exactly one" in two.json()["detail"]
    none = deploy(org, config_id=config_id, target={"selector": "kind=nothing-like-this"})
    assert none.status_code == 400 and "No gateway matches" in none.json()["detail"]
    bad_selector = deploy(org, config_id=config_id, target={"selector": "a in (b"})
    assert bad_selector.status_code == 422 and "Invalid selector" in bad_selector.json()["detail"]
    bad_batches = deploy(
        org,
        config_id=config_id,
        target={"all": True},
        strategy={"type": "staged", "batches": ["0%"]},
    )
    assert bad_batches.status_code == 422
    assert deploy(org, config_id=config_id, version=9, target={"all": True}).status_code == 404
    assert org.get("/api/v1/deployments").json()["items"] == []  # nothing was stored


async def test_a_lacking_component_is_refused_naming_gateway_and_component(org: Org) -> None:
    gw = labelled_gateway(org, kind="lacking")
    agent = WsAgent(
        org.server.ws_url + "/v1/opamp",
        gw["opamp_token"],
        components={"receivers": ["otlp"], "exporters": ["otlphttp"]},  # no debug exporter
    )
    await agent.connect()
    try:
        await agent.request(agent.full_state())
        config_id = template_with(org, GOOD)
        await until(
            lambda: org.get(f"/api/v1/gateways/{gw['id']}/status").json()["agent"] is not None
        )
        resp = await asyncio.to_thread(
            deploy, org, config_id=config_id, target={"gateway_ids": [gw["id"]]}
        )
        assert resp.status_code == 422, resp.text
        text = str(resp.json()["detail"])
        assert gw["name"] in text and "debug" in text
    finally:
        await agent.close()


async def test_a_restarted_server_resumes_the_rollout(make_server: Any) -> None:
    from tests.support.api import new_org, superuser_client

    server = make_server()
    with superuser_client(server) as su:
        org = new_org(server, su)
        gws = [labelled_gateway(org, name=f"r{i}", ring="all") for i in range(2)]
        config_id = template_with(org, GOOD)
        resp = deploy(
            org,
            config_id=config_id,
            target={"selector": "ring=all"},
            strategy={"type": "staged", "batches": [1, "100%"], "batch_timeout_seconds": 600},
        )
        assert resp.status_code == 201, resp.text
        did = resp.json()["id"]
    await asyncio.to_thread(server.restart)  # batch 1 is waiting for r0, which is offline
    with superuser_client(server) as su:
        org2 = Org(server=server, id=org.id, name=org.name, admin=su)
        assert deployment(org2, did)["state"] == "rolling_out"
        gws_fresh = [
            {**gw, "opamp_token": gw["opamp_token"]} for gw in gws
        ]  # tokens survive the restart
        async with agents(org2, gws_fresh) as running:
            await until(lambda: deployment(org2, did)["state"] == "completed", timeout=30)
            assert all(a.received == [GOOD] for a in running.values())


def test_the_cli_deploys_and_follows_the_rollout(org: Org) -> None:
    gw = labelled_gateway(org, cli="yes")
    config_id = template_with(org, GOOD)
    name = org.get(f"/api/v1/configs/{config_id}").json()["name"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowgate",
            "deploy",
            name,
            "--selector",
            "cli=yes",
            "--org",
            org.name,
        ],
        env=org.server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The server's rollout driver sends the CLI's deployment; the REST gateway fetches it
        # and reports the version it applied.
        auth = {"Authorization": f"Bearer {gw['opamp_token']}"}

        def assigned() -> bool:
            cfg = anonymous(org.server).get(
                f"/api/v1/opamp/config/{gw['instance_id']}", headers=auth
            )
            return bool(cfg.json()["config_version"] == 1)

        try:
            wait_for(assigned, timeout=20)
        except AssertionError:
            proc.kill()
            raise AssertionError(proc.communicate()) from None
        assert org.heartbeat(gw, {"config_version": 1}).status_code == 200
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    did = out.strip().splitlines()[0]
    assert deployment(org, did)["state"] == "completed"
