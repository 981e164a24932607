"""Deployments driven with an OpAMP client nobody here wrote: PyPI's
``opentelemetry-opamp-client`` (``OpAMPClient`` + ``OpAMPAgent``, plain HTTP polling), on SQLite
and PostgreSQL.

Each agent behaves like a collector: it takes the body of every remote config it is sent, and
reports ``APPLIED`` with the config's hash, or ``FAILED`` with an error message when the body
contains the agent's ``fail_on`` marker. HTTP agents get a new config on their next poll, so the
poll interval here is short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._opamp import MessageData, OpAMPAgent, OpAMPCallbacks, OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2 as client_pb2

from tests.support.api import Org
from tests.support.deploys import deploy, deployment, labelled_gateway, targets, template_with
from tests.support.polling import wait_for

POLL_SECONDS = 0.3

GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)
BETTER = GOOD.replace("grpc: {}", "http: {}")
#: FlowGate accepts it (it knows no component schemas); the agents refuse it.
BAD = GOOD.replace("debug: {}", "debug: {verbosity: loud}")
BAD_MARKER = "loud"
AGENT_ERROR = "exporter debug: unknown verbosity 'loud'"


class ApplyingCallbacks(OpAMPCallbacks):
    """Records every remote config body; reports APPLIED, or FAILED for ``fail_on`` bodies."""

    def __init__(self, fail_on: str | None) -> None:
        self.fail_on = fail_on
        self.received: list[str] = []
        self.errors: list[Any] = []
        self.lock = threading.Lock()

    def on_message(self, agent: OpAMPAgent, client: OpAMPClient, message: MessageData) -> None:
        remote = message.remote_config
        if remote is None:
            return
        # The client's own decoder reads JSON bodies only; a collector reads its YAML as is.
        body = remote.config.config_map[""].body.decode()
        with self.lock:
            self.received.append(body)
        failing = self.fail_on is not None and self.fail_on in body
        status = client.update_remote_config_status(
            remote_config_hash=remote.config_hash,
            status=(
                client_pb2.RemoteConfigStatuses_FAILED
                if failing
                else client_pb2.RemoteConfigStatuses_APPLIED
            ),
            error_message=AGENT_ERROR if failing else "",
        )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))

    def on_error(self, agent: OpAMPAgent, client: OpAMPClient, error: Any) -> None:
        self.errors.append(error)


class PyPIAgent:
    """An ``OpAMPAgent`` of the PyPI client over HTTP, for one registered gateway."""

    def __init__(
        self,
        org: Org,
        gateway: dict[str, Any],
        fail_on: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.gateway = gateway
        self.callbacks = ApplyingCallbacks(fail_on)
        self.client = OpAMPClient(
            endpoint=org.server.url + "/v1/opamp",
            headers={"Authorization": f"Bearer {gateway['opamp_token']}"},
            timeout_millis=5000,
            agent_identifying_attributes={
                "service.name": "pypi-agent",
                "service.instance.id": gateway["instance_id"],
                "service.version": "1.0.0",
            },
            agent_non_identifying_attributes={"os.type": "linux", **(attributes or {})},
        )
        self.agent = OpAMPAgent(
            interval=POLL_SECONDS,
            callbacks=self.callbacks,
            client=self.client,
            initial_backoff=0.2,
        )

    @property
    def received(self) -> list[str]:
        with self.callbacks.lock:
            return list(self.callbacks.received)


@pytest.fixture
def start_agents() -> Iterator[Any]:
    started: list[PyPIAgent] = []

    def start(org: Org, gateways: list[dict[str, Any]], **kw: Any) -> dict[str, PyPIAgent]:
        fail_on: dict[str, str] = kw.pop("fail_on", {})
        attributes: dict[str, dict[str, str]] = kw.pop("attributes", {})
        out = {}
        for gw in gateways:
            agent = PyPIAgent(org, gw, fail_on.get(gw["id"]), attributes.get(gw["id"]))
            agent.agent.start()
            started.append(agent)
            out[gw["id"]] = agent
        for gw in gateways:  # connected: the server has seen the agent over OpAMP
            wait_for(
                lambda gw=gw: (
                    org.get(f"/api/v1/gateways/{gw['id']}").json()["transport"] == "opamp-http"
                )
            )
        return out

    yield start
    for agent in started:
        agent.agent.stop(timeout=5)


def settled(org: Org, deployment_id: str, state: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        info = deployment(org, deployment_id)
        return info if info["state"] == state else None

    try:
        return dict(wait_for(probe, timeout=20))
    except AssertionError:
        info = deployment(org, deployment_id)
        raise AssertionError(f"deployment never became {state}: {info}") from None


def reported(
    org: Org, gateway_id: str, status: str, config_hash: str | None = None
) -> dict[str, Any]:
    """``GET /api/v1/gateways/{id}/config`` once it shows the agent's last status (about
    ``config_hash``, when given): the gateway's view follows with the next presence flush."""

    def probe() -> dict[str, Any] | None:
        cfg: dict[str, Any] = org.get(f"/api/v1/gateways/{gateway_id}/config").json()
        rcs = cfg["remote_config_status"]
        ok = bool(rcs) and rcs["status"] == status
        if config_hash is not None:
            ok = ok and rcs["config_hash"] == config_hash
        return cfg if ok else None

    return dict(wait_for(probe))


def version_hash(org: Org, config_id: str, version: int) -> str:
    resp = org.get(f"/api/v1/configs/{config_id}/versions/{version}")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["config_hash"])


def test_a_selector_deployment_reaches_every_matching_pypi_agent(
    org: Org, start_agents: Any
) -> None:
    """Labels set by a person (PATCH) and reported by the agent itself (its
    ``flowgate.label.fleet`` attribute); the deployment's counts follow the agents'
    RemoteConfigStatus to completed, applied == total."""
    patched = [labelled_gateway(org, fleet="pypi") for _ in range(2)]
    reporting = org.register()
    outsider = labelled_gateway(org, fleet="other")
    prod = [*patched, reporting]
    config_id = template_with(org, GOOD)
    running = start_agents(
        org, [*prod, outsider], attributes={reporting["id"]: {"flowgate.label.fleet": "pypi"}}
    )
    wait_for(lambda: org.get("/api/v1/gateways/count", selector="fleet=pypi").json()["count"] == 3)

    resp = deploy(org, config_id=config_id, target={"selector": "fleet=pypi"})
    assert resp.status_code == 201, resp.text
    did = resp.json()["id"]
    info = settled(org, did, "completed")
    assert info["counts"]["total"] == 3
    assert info["counts"]["applied"] == info["counts"]["total"]
    assert info["counts"]["failed"] == 0
    rows = targets(org, did)
    assert set(rows) == {gw["id"] for gw in prod}
    assert {row["state"] for row in rows.values()} == {"applied"}
    for gw in prod:
        assert running[gw["id"]].received == [GOOD]
        cfg = reported(org, gw["id"], "applied", version_hash(org, config_id, 1))
        assert (cfg["config_version"], cfg["deployment_id"], cfg["config_id"]) == (
            1,
            did,
            config_id,
        )
    assert running[outsider["id"]].received == []
    assert not any(agent.callbacks.errors for agent in running.values())


def test_a_version_a_pypi_agent_fails_marks_its_target_failed_with_its_message(
    org: Org, start_agents: Any
) -> None:
    gws = [labelled_gateway(org, fleet="fails") for _ in range(2)]
    picky, easy = gws
    config_id = template_with(org, GOOD, BAD)
    running = start_agents(org, gws, fail_on={picky["id"]: BAD_MARKER})
    first = deploy(org, config_id=config_id, version=1, target={"selector": "fleet=fails"})
    assert first.status_code == 201, first.text
    settled(org, first.json()["id"], "completed")

    resp = deploy(org, config_id=config_id, version=2, target={"selector": "fleet=fails"})
    assert resp.status_code == 201, resp.text
    did = resp.json()["id"]
    info = settled(org, did, "failed")  # all-at-once: failed once every target settled
    assert (info["counts"]["applied"], info["counts"]["failed"]) == (1, 1)
    rows = targets(org, did)
    assert rows[picky["id"]]["state"] == "failed"
    assert rows[picky["id"]]["error_message"] == AGENT_ERROR
    assert rows[easy["id"]]["state"] == "applied"
    assert rows[easy["id"]]["error_message"] is None
    assert running[picky["id"]].received == [GOOD, BAD]
    # The gateway's own view follows with the next presence flush.
    cfg = reported(org, picky["id"], "failed", version_hash(org, config_id, 2))
    assert cfg["remote_config_status"]["error_message"] == AGENT_ERROR


def test_a_staged_rollout_whose_pypi_canary_fails_rolls_back(org: Org, start_agents: Any) -> None:
    """The canary gets its ``ring=canary`` label from its own OpAMP description
    (``flowgate.label.ring``); it fails version 2, the rollout stops after the first batch and
    rolls the canary back to version 1. Nobody else ever receives version 2."""
    canary = org.register(name="c-canary")
    others = [org.register(name=f"m-{i}") for i in range(3)]
    config_id = template_with(org, GOOD, BAD)
    running = start_agents(
        org,
        [canary, *others],
        fail_on={canary["id"]: BAD_MARKER},
        attributes={canary["id"]: {"flowgate.label.ring": "canary"}},
    )
    wait_for(
        lambda: org.get(f"/api/v1/gateways/{canary['id']}").json()["labels"].get("ring") == "canary"
    )
    first = deploy(org, config_id=config_id, version=1, target={"all": True})
    assert first.status_code == 201, first.text
    settled(org, first.json()["id"], "completed")

    resp = deploy(
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
    info = settled(org, did, "rolled_back")
    assert info["counts"]["failed"] == 1
    rows = targets(org, did)
    assert rows[canary["id"]]["state"] == "failed"
    assert rows[canary["id"]]["error_message"] == AGENT_ERROR
    assert {rows[g["id"]]["state"] for g in others} == {"pending"}

    listed = org.get("/api/v1/deployments").json()["items"]
    rollback = next(d for d in listed if d["rollback_of"] == did)
    back = settled(org, rollback["id"], "completed")
    assert (back["counts"]["total"], back["counts"]["applied"]) == (1, 1)
    assert running[canary["id"]].received == [GOOD, BAD, GOOD]
    for gw in others:
        assert running[gw["id"]].received == [GOOD]
    cfg = reported(org, canary["id"], "applied", version_hash(org, config_id, 1))
    assert (cfg["config_version"], cfg["deployment_id"]) == (1, rollback["id"])


def test_a_newer_version_supersedes_what_pypi_agents_ran(org: Org, start_agents: Any) -> None:
    gws = [labelled_gateway(org, fleet="newer") for _ in range(2)]
    config_id = template_with(org, GOOD, BETTER)
    running = start_agents(org, gws)
    first = deploy(org, config_id=config_id, version=1, target={"selector": "fleet=newer"})
    assert first.status_code == 201, first.text
    settled(org, first.json()["id"], "completed")
    second = deploy(org, config_id=config_id, version=2, target={"selector": "fleet=newer"})
    assert second.status_code == 201, second.text
    info = settled(org, second.json()["id"], "completed")
    assert info["counts"]["applied"] == 2
    for gw in gws:
        assert running[gw["id"]].received == [GOOD, BETTER]
    # The first deployment keeps its history: settled targets are not superseded afterwards.
    old = deployment(org, first.json()["id"])
    assert old["state"] == "completed" and old["counts"]["applied"] == 2
    for gw in gws:
        cfg = reported(org, gw["id"], "applied", version_hash(org, config_id, 2))
        assert (cfg["config_version"], cfg["deployment_id"]) == (2, second.json()["id"])


# --- REST gateways: a report names the configuration, not just a version number -----------


def test_a_rest_report_about_another_templates_version_1_does_not_mark_applied(
    org: Org,
) -> None:
    """Versions are numbered per template, so "version 1" does not say which configuration a
    REST gateway runs. One that reports the ``config_hash`` of what it runs (as
    gateway/heartbeat.sh does) moves only the target of that configuration: while it still
    runs template A's version 1, template B's version 1 is not applied."""
    gw = labelled_gateway(org, kind="rest-hash")
    a = template_with(org, GOOD)
    b = template_with(org, BETTER)

    def report(config_id: str) -> None:
        body = {
            "config_version": 1,
            "config_status": {
                "status": "applied",
                "config_version": 1,
                "config_hash": version_hash(org, config_id, 1),
            },
        }
        resp = org.heartbeat(gw, body)
        assert resp.status_code == 200, resp.text

    first = deploy(org, config_id=a, target={"gateway_ids": [gw["id"]]})
    assert first.status_code == 201, first.text
    report(a)
    settled(org, first.json()["id"], "completed")

    second = deploy(org, config_id=b, target={"gateway_ids": [gw["id"]]})
    assert second.status_code == 201, second.text
    did = second.json()["id"]
    report(a)  # the gateway has not fetched B yet
    time.sleep(1.5)  # several flushes of the rollout reports
    assert targets(org, did)[gw["id"]]["state"] == "sent"
    assert deployment(org, did)["state"] == "rolling_out"
    report(b)
    settled(org, did, "completed")
    reported(org, gw["id"], "applied", version_hash(org, b, 1))


def test_a_rest_report_with_a_malformed_hash_is_refused(org: Org) -> None:
    gw = labelled_gateway(org, kind="rest-hash")
    resp = org.heartbeat(gw, {"config_status": {"status": "applied", "config_hash": "nope"}})
    assert resp.status_code == 422, resp.text
