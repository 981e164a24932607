"""Deployments to REST gateways that run the real scripts and the REAL collector, on SQLite
and PostgreSQL.

Each gateway is ``bash gateway/docker-entrypoint.sh`` (heartbeat.sh + update-opamp-config.sh)
running ``otelcol-contrib`` 0.135 (see conftest.py ``real_gateways``). A deployment reaches it
through ``GET /api/v1/opamp/config/{instance_id}``; the script validates the version with the
collector's own ``validate``, swaps it in, reloads the collector with SIGHUP, and its next
heartbeat reports the ``config_version`` it runs (or a ``config_status`` saying why not). What
a collector really runs is seen in what it exports: every config tags its exports with a
header (``x-flowgate-config``) that the test's OTLP receiver records.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from tests.gateway.conftest import (
    FlowGate,
    GatewayRun,
    OtlpSink,
    alive,
    collector_config,
    wait_for,
)

Gateways = Callable[..., GatewayRun]


@pytest.fixture
def gateway(flowgate: FlowGate, real_gateways: Gateways) -> Gateways:
    def make(**env: str) -> GatewayRun:
        return real_gateways(BACKEND_URL=flowgate.url, **env)

    return make


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on: a collector serving its metrics there cannot start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def running(flowgate: FlowGate, gw: GatewayRun, sink: OtlpSink, **labels: str) -> str:
    """Start ``gw`` with a registration token, wait until it heartbeats and its collector
    exports with the local config; label it (as a person would). Returns its gateway id."""
    gw.start(REGISTRATION_TOKEN=flowgate.token_via_api(gw.instance_id, max_uses=1))
    gw.wait_log(r"\[HEARTBEAT\] INFO ok gateway_id=", timeout=20)
    found = wait_for(lambda: flowgate.gateway(gw.instance_id), timeout=5)
    sink.wait_config(gw.instance_id, "local")
    if labels:
        flowgate.set_labels(found["id"], **labels)
    return str(found["id"])


def hangups(gw: GatewayRun) -> int:
    """How many SIGHUPs the real collector logged (``Received signal from OS ... hangup``)."""
    return sum(
        1
        for line in gw.log().splitlines()
        if "Received signal from OS" in line and "hangup" in line
    )


def test_a_selector_deployment_is_applied_by_real_collectors(
    flowgate: FlowGate, gateway: Gateways, otlp_sink: OtlpSink
) -> None:
    gws = [gateway(), gateway()]
    ids = [running(flowgate, gw, otlp_sink, tier="rest-real") for gw in gws]
    pids = [gw.pid("collector") for gw in gws]
    v1 = collector_config("v1", sink=otlp_sink.url)
    config_id = flowgate.template(v1)

    did = flowgate.deploy(config_id, 1, target={"selector": "tier=rest-real"})
    info = flowgate.wait_deployment(did, "completed")
    assert info["counts"]["total"] == 2
    assert info["counts"]["applied"] == info["counts"]["total"]
    assert {t["state"] for t in flowgate.targets(did).values()} == {"applied"}
    for gw, gid, pid in zip(gws, ids, pids, strict=True):
        state = gw.config_state()
        assert (state["version"], state["deployment_id"], state["status"]) == ("1", did, "applied")
        assert (gw.state_dir / "config" / "current.yaml").read_text() == v1
        # validated by the real collector, then reloaded in place (SIGHUP), not restarted
        gw.wait_log(r"\[CONFIG\] INFO applied config \(version=1 source=remote")
        assert gw.pid("collector") == pid and pid and alive(pid)
        assert hangups(gw) == 1
        otlp_sink.wait_config(gw.instance_id, "v1")
        cfg = flowgate.admin.get(
            f"/api/v1/gateways/{gid}/config", params={"org_id": flowgate.org_id}
        ).json()
        assert (cfg["config_version"], cfg["deployment_id"], cfg["config_id"]) == (
            1,
            did,
            config_id,
        )
        wait_for(
            lambda gid=gid: flowgate.status(gid)["config"]["applied_config_version"] == 1,
            timeout=10,
        )

    # The heartbeats go on reporting version 1: the deployment stays completed, nothing more
    # is applied or reloaded.
    gws[0].wait_log(r"\[HEARTBEAT\] INFO ok .*config_version=1", count=3, timeout=10)
    assert flowgate.deployment(did)["state"] == "completed"
    assert [hangups(gw) for gw in gws] == [1, 1]


def test_a_version_the_collector_refuses_fails_the_target_and_rollback_restores(
    flowgate: FlowGate, gateway: Gateways, otlp_sink: OtlpSink, taken_port: int
) -> None:
    """Version 2 names an exporter type this collector build lacks: FlowGate cannot know (a
    REST gateway reports no components), the collector's ``validate`` refuses it, the target
    fails with the collector's own error, and the collector never runs it. A rollback puts
    version 1 back. Version 3 passes ``validate`` but the collector cannot start it (its
    metrics port is taken): the script rolls the collector back to version 1 and reports the
    failure."""
    gw = gateway()
    gid = running(flowgate, gw, otlp_sink)
    pid = gw.pid("collector")
    v1 = collector_config("v1", sink=otlp_sink.url)
    v2 = collector_config("v2", sink=otlp_sink.url, exporter="otlp")
    v3 = collector_config("v3", sink=otlp_sink.url, metrics_port=taken_port)
    config_id = flowgate.template(v1, v2, v3)
    first = flowgate.deploy(config_id, 1, target={"gateway_ids": [gid]})
    flowgate.wait_deployment(first, "completed")
    otlp_sink.wait_config(gw.instance_id, "v1")

    bad = flowgate.deploy(config_id, 2, target={"gateway_ids": [gid]})
    info = flowgate.wait_deployment(bad, "failed")
    assert (info["counts"]["failed"], info["counts"]["applied"]) == (1, 0)
    target = flowgate.targets(bad)[gid]
    assert target["state"] == "failed"
    error = target["error_message"] or ""
    # the collector's whole error, not just its first line ("...the following error(s):")
    assert 'unknown type: "otlp" for id: "otlp"' in error, error
    assert gw.config_state()["failed_version"] == "2"
    assert (gw.state_dir / "config" / "current.yaml").read_text() == v1
    assert gw.pid("collector") == pid and hangups(gw) == 1  # never loaded

    back = flowgate.rollback(bad)
    flowgate.wait_deployment(back, "completed")
    assert flowgate.targets(back)[gid]["state"] == "applied"
    assert flowgate.deployment(bad)["state"] == "rolled_back"
    state = gw.config_state()
    assert (state["version"], state["status"], state["deployment_id"]) == ("1", "applied", back)
    assert "v2" not in otlp_sink.configs(gw.instance_id)

    crash = flowgate.deploy(config_id, 3, target={"gateway_ids": [gid]})
    flowgate.wait_deployment(crash, "failed")
    error = flowgate.targets(crash)[gid]["error_message"] or ""
    assert "exited after reloading config version 3" in error, error
    gw.wait_log(r"\[CONFIG\] ERROR config version 3 rolled back to last good")
    gw.wait_log(r"address already in use")
    # the entrypoint restarted the collector, with version 1
    new_pid = wait_for(lambda: gw.pid("collector") != pid and gw.pid("collector"), timeout=15)
    assert alive(new_pid)
    assert (gw.state_dir / "config" / "current.yaml").read_text() == v1
    assert gw.config_state()["version"] == "1"
    # what it exports now (a new log line) carries version 1's tag
    before = len(otlp_sink.configs(gw.instance_id))
    with gw.app_log.open("a") as fh:
        fh.write("after the rollback\n")
    wait_for(lambda: "v1" in otlp_sink.configs(gw.instance_id)[before:], timeout=15)
    assert "v3" not in otlp_sink.configs(gw.instance_id)


def test_a_staged_rollout_whose_canary_collector_refuses_rolls_back(
    flowgate: FlowGate, gateway: Gateways, otlp_sink: OtlpSink
) -> None:
    canary_gw, main_gw = gateway(), gateway()
    canary = running(flowgate, canary_gw, otlp_sink, ring="canary", fleet="staged-real")
    main = running(flowgate, main_gw, otlp_sink, ring="main", fleet="staged-real")
    v1 = collector_config("v1", sink=otlp_sink.url)
    v2 = collector_config("v2", sink=otlp_sink.url, exporter="otlp")
    config_id = flowgate.template(v1, v2)
    first = flowgate.deploy(config_id, 1, target={"selector": "fleet=staged-real"})
    flowgate.wait_deployment(first, "completed")

    did = flowgate.deploy(
        config_id,
        2,
        target={"selector": "fleet=staged-real"},
        strategy={
            "type": "staged",
            "batches": [1, "100%"],
            "max_failed": 0,
            "batch_timeout_seconds": 60,
            "canary_selector": "ring=canary",
        },
        auto_rollback=True,
    )
    info = flowgate.wait_deployment(did, "rolled_back")
    assert info["counts"]["failed"] == 1
    rows = flowgate.targets(did)
    assert rows[canary]["state"] == "failed"
    assert 'unknown type: "otlp"' in (rows[canary]["error_message"] or "")
    assert rows[main]["state"] == "pending"
    rollback = next(d for d in flowgate.deployments() if d["rollback_of"] == did)
    flowgate.wait_deployment(rollback["id"], "completed")
    assert set(flowgate.targets(rollback["id"])) == {canary}
    state = canary_gw.config_state()
    assert (state["version"], state["status"]) == ("1", "applied")
    # The other gateway never fetched version 2: its script never saw it, its collector never
    # ran it.
    assert main_gw.config_state()["version"] == "1"
    assert "failed_version=2" not in (main_gw.state_dir / "config" / "state").read_text()
    assert "version=2" not in main_gw.log()
    for gw in (canary_gw, main_gw):
        assert "v2" not in otlp_sink.configs(gw.instance_id)


def test_version_1_of_another_template_is_not_taken_for_the_one_running(
    flowgate: FlowGate, gateway: Gateways, otlp_sink: OtlpSink
) -> None:
    """Versions are numbered per template. A gateway running template A's version 1 keeps
    heartbeating "version 1" while it has not fetched template B's version 1 (here one its
    collector refuses): heartbeats name the config by its ``config_hash``, so B's target goes
    from sent to failed, never through applied. (Config polls every 4 s, heartbeats every
    second: several heartbeats about A come before the gateway fetches B.)"""
    gw = gateway(CONFIG_POLL_INTERVAL="4")
    gid = running(flowgate, gw, otlp_sink)
    a = flowgate.template(collector_config("a1", sink=otlp_sink.url))
    b = flowgate.template(collector_config("b1", sink=otlp_sink.url, exporter="otlp"))
    first = flowgate.deploy(a, 1, target={"gateway_ids": [gid]})
    flowgate.wait_deployment(first, "completed")
    otlp_sink.wait_config(gw.instance_id, "a1")

    did = flowgate.deploy(b, 1, target={"gateway_ids": [gid]})
    seen: list[str] = []

    def settled() -> bool:
        seen.append(flowgate.targets(did)[gid]["state"])
        return seen[-1] not in ("sent", "applying")

    wait_for(settled, timeout=20, interval=0.05)
    assert "applied" not in seen, seen
    info = flowgate.wait_deployment(did, "failed")
    assert info["counts"]["failed"] == 1
    assert 'unknown type: "otlp"' in (flowgate.targets(did)[gid]["error_message"] or "")
    assert (
        gw.config_state()["config_hash"]
        == flowgate.admin.get(
            f"/api/v1/configs/{a}/versions/1", params={"org_id": flowgate.org_id}
        ).json()["config_hash"]
    )
