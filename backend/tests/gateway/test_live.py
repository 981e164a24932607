"""The gateway scripts (REST mode) against a live FlowGate, on SQLite and PostgreSQL.

Each test runs ``bash gateway/docker-entrypoint.sh`` with the REAL collector (otelcol-contrib
0.135 of the pinned test-only package: filelog, batch, memory_limiter, k8spath, otlphttp; see
conftest.py ``real_gateways``): its configurations are made of those components, tail the
gateway's app log and export to a test OTLP receiver with a header naming the configuration,
so a test sees what the collector really runs. Intervals are shortened (1 s heartbeats and
config polls, 100-800 ms backoff).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import (
    JWT_LIKE,
    FlowGate,
    GatewayRun,
    OtlpSink,
    alive,
    collector_config,
    free_port,
    wait_for,
)

Gateways = Callable[..., GatewayRun]


@pytest.fixture
def gateway(flowgate: FlowGate, real_gateways: Gateways) -> Gateways:
    """``gateway(**env)``: a gateway (not started) pointed at this module's FlowGate, running
    the real collector with its local config (tag ``local``)."""

    def make(**env: str) -> GatewayRun:
        return real_gateways(BACKEND_URL=flowgate.url, **env)

    return make


@pytest.fixture
def configs(otlp_sink: OtlpSink) -> Callable[..., str]:
    """``configs(tag, **kw)``: a configuration of the real collector's components."""

    def make(tag: str, **kw: object) -> str:
        return collector_config(tag, sink=otlp_sink.url, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on: a collector serving its metrics there cannot start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def collector_env(pid: int) -> dict[str, str]:
    """The environment the collector process really has."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def hangups(gw: GatewayRun) -> int:
    """How many SIGHUPs the real collector logged (``Received signal from OS ... hangup``)."""
    return sum(
        1
        for line in gw.log().splitlines()
        if "Received signal from OS" in line and "hangup" in line
    )


def validations(gw: GatewayRun) -> int:
    return gw.log().count("[CONFIG] INFO validating new config")


def wait_registered(flowgate: FlowGate, gw: GatewayRun) -> dict:
    gw.wait_log(r"\[HEARTBEAT\] INFO ok gateway_id=", timeout=15)
    return dict(wait_for(lambda: flowgate.gateway(gw.instance_id), timeout=5))


def test_onboards_with_a_registration_token_and_heartbeats_make_it_healthy(
    flowgate: FlowGate, gateway: Gateways, configs: Callable[..., str], otlp_sink: OtlpSink
) -> None:
    """Registration with a CLI-created (single-use) token, heartbeats -> healthy, the
    collector's own metrics (scraped from its Prometheus endpoint) and versions reported, the
    token file 0600 -- and no token ever printed, even with FLOWGATE_DEBUG=1 (`set -x` in
    every script)."""
    registration_token = flowgate.token_via_cli("gateway-onboarding")
    metrics_port = free_port()
    gw = gateway(
        REGISTRATION_TOKEN=registration_token,
        FLOWGATE_DEBUG="1",
        COLLECTOR_METRICS_URL=f"http://127.0.0.1:{metrics_port}/metrics",
    )
    Path(gw.env["OTELCOL_CONFIG"]).write_text(configs("local", metrics_port=metrics_port))
    gw.app_log.write_text("".join(f"line {i}\n" for i in range(42)))
    gw.start()

    status = flowgate.wait_healthy(gw.instance_id)
    token_file = gw.state_dir / "opamp_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    opamp_token = gw.opamp_token()
    assert opamp_token and "\n" not in opamp_token
    assert flowgate.heartbeat(gw.instance_id, opamp_token).status_code == 200

    gateway = flowgate.gateway(gw.instance_id)
    assert gateway is not None and gateway["status"] == "active"
    assert gateway["name"] == f"test gateway {gw.instance_id}"
    assert status["version"]["agent_version"] == "0.1.0"
    # from `$OTELCOL_BIN --version` ("otelcontribcol version 0.135.0-dev")
    assert status["version"]["otel_version"] == "0.135.0-dev"
    assert "AcceptsRemoteConfig" in status["version"]["capabilities"]
    # the 42 lines the filelog receiver read, all exported (the collector's real counters)
    otlp_sink.wait_config(gw.instance_id, "local")
    metrics = wait_for(
        lambda: (
            flowgate.status(gateway["id"])["metrics"].get("logs_processed") == 42
            and flowgate.status(gateway["id"])["metrics"]
        ),
        timeout=15,
    )
    assert metrics["errors"] == 0
    collector = gw.pid("collector")
    assert collector
    environ = collector_env(collector)

    assert gw.stop() == 0
    log = gw.log()
    assert re.search(r"\[ONBOARD\] INFO registered gateway_id=", log)
    assert re.search(r"\[HEARTBEAT\] INFO ok gateway_id=", log)
    assert "\n+" in log, "FLOWGATE_DEBUG=1 should have traced the scripts"
    assert registration_token not in log
    assert opamp_token not in log
    assert not JWT_LIKE.search(log)
    # the collector never sees the credentials
    assert "REGISTRATION_TOKEN" not in environ and "OPAMP_TOKEN" not in environ
    assert environ["INSTANCE_ID"] == gw.instance_id
    assert not any(registration_token in v or opamp_token in v for v in environ.values())
    assert registration_token not in flowgate.log()


def test_restart_reuses_the_saved_token(flowgate: FlowGate, gateway: Gateways) -> None:
    """A saved token skips registration: after a restart with a registration token that
    would be rejected, the gateway carries on with the same OpAMP token (bash JSON
    reader)."""
    gw = gateway(REGISTRATION_TOKEN=flowgate.token_via_api("restart", max_uses=1))
    gw.start()
    wait_registered(flowgate, gw)
    first_token = gw.opamp_token()
    assert gw.stop() == 0

    gw.start(REGISTRATION_TOKEN="not-a-valid-registration-token", JSON_TOOL="bash")
    gw.wait_log(r"\[HEARTBEAT\] INFO ok gateway_id=", count=2)
    log = gw.log(since_start=True)
    assert "[ONBOARD] INFO using saved OpAMP token" in log
    assert "registering instance_id" not in log
    assert gw.opamp_token() == first_token
    assert len(flowgate.gateways(gw.instance_id)) == 1
    flowgate.wait_healthy(gw.instance_id)


def test_revoked_token_triggers_re_onboarding(flowgate: FlowGate, gateway: Gateways) -> None:
    """Deactivating the gateway revokes its OpAMP token: the next heartbeat gets 401 and
    the gateway re-onboards with its (single-use, already used) registration token, which
    FlowGate accepts again for the same instance (python3 JSON reader)."""
    # A slower heartbeat, so that the deactivation below does not race a heartbeat: FlowGate
    # re-caches the old token if one lands mid-deactivation (reported backend issue).
    registration_token = flowgate.token_via_api("revoke", max_uses=1)
    gw = gateway(
        REGISTRATION_TOKEN=registration_token,
        JSON_TOOL="python3",
        FLOWGATE_DEBUG="1",
        HEARTBEAT_INTERVAL="3",
        CONFIG_POLL_INTERVAL="600",
    )
    gw.start()
    gateway = wait_registered(flowgate, gw)
    old_token = gw.opamp_token()
    seen = gw.log().count("[HEARTBEAT] INFO ok")
    wait_for(lambda: gw.log().count("[HEARTBEAT] INFO ok") > seen, timeout=10)
    time.sleep(0.3)  # the heartbeat just answered; the next one is ~3 s away

    flowgate.deactivate(gateway["id"])
    gw.wait_log(r"\[HEARTBEAT\] WARN OpAMP token rejected: HTTP 401", timeout=10)
    gw.wait_log(r"\[HEARTBEAT\] INFO re-onboarding")
    wait_for(lambda: gw.opamp_token() != old_token, timeout=10)
    status = flowgate.wait_healthy(gw.instance_id)
    assert status["status"] == "active"
    assert flowgate.heartbeat(gw.instance_id, old_token).status_code == 401
    assert flowgate.heartbeat(gw.instance_id, gw.opamp_token()).status_code == 200
    assert len(flowgate.gateways(gw.instance_id)) == 1
    log = gw.log()
    for secret in (registration_token, old_token, gw.opamp_token()):
        assert secret not in log


def _retry_delays(log: str, tag: str) -> list[float]:
    return [float(x) for x in re.findall(rf"\[{tag}\] WARN .*? in ([0-9.]+)s", log)]


def test_backend_down_then_back_up(
    flowgate: FlowGate, gateway: Gateways, otlp_sink: OtlpSink
) -> None:
    """With the backend down the collector still starts (data plane first) and onboarding
    retries with backoff and jitter; once it is up the gateway registers. A later outage is
    ridden out the same way by the heartbeat loop."""
    token = flowgate.token_via_api("outage", max_uses=1)
    gw = gateway(REGISTRATION_TOKEN=token)
    flowgate.stop()
    try:
        gw.start()
        gw.wait_log(r"\[ONBOARD\] WARN backend unavailable", count=4, timeout=10)
        # the collector does not wait for the backend: it runs and exports meanwhile
        otlp_sink.wait_config(gw.instance_id, "local")
        delays = _retry_delays(gw.log(), "ONBOARD")
        # equal jitter: attempt n waits between d/2 and d, d = 100 ms * 2^(n-1), max 800 ms
        for n, delay in enumerate(delays[:4], start=1):
            cap = min(0.1 * 2 ** (n - 1), 0.8)
            assert cap / 2 - 0.002 <= delay <= cap + 0.002, (n, delay, delays)
        assert max(delays) <= 0.8 + 0.002
    finally:
        flowgate.start()
    wait_registered(flowgate, gw)
    flowgate.wait_healthy(gw.instance_id)

    flowgate.stop()
    try:
        gw.wait_log(r"\[HEARTBEAT\] WARN heartbeat failed", count=3, timeout=10)
    finally:
        flowgate.start()
    gw.wait_log(r"\[HEARTBEAT\] INFO backend reachable again after \d+ failed attempts")
    flowgate.wait_healthy(gw.instance_id)
    assert gw.proc is not None and gw.proc.poll() is None


def test_config_update_is_validated_applied_and_reported(
    flowgate: FlowGate, gateway: Gateways, configs: Callable[..., str], otlp_sink: OtlpSink
) -> None:
    gw = gateway(REGISTRATION_TOKEN=flowgate.token_via_api("config", max_uses=1))
    gw.start()
    gateway = wait_registered(flowgate, gw)
    config_dir = gw.state_dir / "config"
    local = Path(gw.env["OTELCOL_CONFIG"]).read_text()
    assert (config_dir / "current.yaml").read_text() == local
    otlp_sink.wait_config(gw.instance_id, "local")
    pid = gw.pid("collector")

    good = configs("good")
    version = flowgate.push_config(gateway["id"], good)
    wait_for(lambda: gw.config_state().get("version") == str(version), timeout=10)
    assert gw.config_state()["status"] == "applied"
    assert gw.config_state()["source"] == "remote"
    # validated with the collector's own command before the swap ...
    assert validations(gw) == 1
    # ... swapped in, the previous one kept, and the collector reloaded with it: in place
    # (SIGHUP, same process), and what it exports now carries the new config's tag
    assert (config_dir / "current.yaml").read_text() == good
    assert (config_dir / "last_good.yaml").read_text() == local
    assert (config_dir / "current.yaml").stat().st_mode & 0o777 == 0o600
    otlp_sink.wait_config(gw.instance_id, "good")
    assert gw.pid("collector") == pid and pid and alive(pid)
    assert hangups(gw) == 1

    def reported() -> dict | None:
        config = flowgate.status(gateway["id"])["config"]
        ok = (
            config["applied_config_version"] == version
            and config["remote_config_status"]
            and config["remote_config_status"]["status"] == "applied"
        )
        return config if ok else None

    wait_for(reported, timeout=10)
    listed = wait_for(
        lambda: (flowgate.gateway(gw.instance_id) or {}).get("current_config_version") == version,
        timeout=5,
    )
    assert listed
    gw.wait_log(r"\[CONFIG\] INFO applied config \(version=\d+ source=remote")


def test_broken_config_is_rejected_and_the_old_one_kept(
    flowgate: FlowGate, gateway: Gateways, configs: Callable[..., str], otlp_sink: OtlpSink
) -> None:
    """A config that names an exporter type this collector build lacks: FlowGate accepts it
    (a REST gateway reports no components), the collector's ``validate`` refuses it."""
    gw = gateway(REGISTRATION_TOKEN=flowgate.token_via_api("broken", max_uses=1))
    gw.start()
    gateway = wait_registered(flowgate, gw)
    config_dir = gw.state_dir / "config"
    good_config = configs("good")
    good = flowgate.push_config(gateway["id"], good_config)
    wait_for(lambda: gw.config_state().get("version") == str(good), timeout=10)
    otlp_sink.wait_config(gw.instance_id, "good")
    assert hangups(gw) == 1

    broken = configs("broken", exporter="no_such_exporter")
    bad = flowgate.push_config(gateway["id"], broken)
    wait_for(lambda: gw.config_state().get("failed_version") == str(bad), timeout=10)
    state = gw.config_state()
    assert state["status"] == "failed"
    assert state["version"] == str(good)
    assert (config_dir / "current.yaml").read_text() == good_config
    assert (config_dir / "rejected.yaml").read_text() == broken
    last_error = (config_dir / "last_error").read_text()
    assert last_error.startswith("Error: failed to get config"), last_error
    assert 'unknown type: "no_such_exporter"' in last_error, last_error
    assert hangups(gw) == 1, "a rejected config must not be loaded"
    assert gw.pid("collector") and alive(gw.pid("collector"))
    gw.wait_log(r"\[CONFIG\] ERROR config rejected by validation, keeping the current one")

    def reported_failure() -> dict | None:
        config = flowgate.status(gateway["id"])["config"]
        rcs = config["remote_config_status"]
        ok = rcs and rcs["status"] == "failed" and config["applied_config_version"] == good
        return rcs if ok else None

    rcs = wait_for(reported_failure, timeout=10)
    assert 'unknown type: "no_such_exporter"' in (rcs["error_message"] or "")
    # the rejected config is not retried on every poll
    time.sleep(1.5)
    assert validations(gw) == 2
    assert "broken" not in otlp_sink.configs(gw.instance_id)

    fixed = flowgate.push_config(gateway["id"], configs("fixed"))
    wait_for(lambda: gw.config_state().get("version") == str(fixed), timeout=10)
    assert gw.config_state()["status"] == "applied"
    otlp_sink.wait_config(gw.instance_id, "fixed")
    wait_for(
        lambda: (
            flowgate.status(gateway["id"])["config"]["remote_config_status"]["status"] == "applied"
        ),
        timeout=10,
    )


def test_config_that_kills_the_collector_is_rolled_back(
    flowgate: FlowGate,
    gateway: Gateways,
    configs: Callable[..., str],
    otlp_sink: OtlpSink,
    taken_port: int,
) -> None:
    """A config that validates but makes the collector exit on reload (its metrics port is
    taken): last_good.yaml is restored, the collector restarted with it, and the failure
    reported."""
    gw = gateway(REGISTRATION_TOKEN=flowgate.token_via_api("crash", max_uses=1))
    gw.start()
    gateway = wait_registered(flowgate, gw)
    good_config = configs("good")
    good = flowgate.push_config(gateway["id"], good_config)
    wait_for(lambda: gw.config_state().get("version") == str(good), timeout=10)
    first_pid = gw.pid("collector")

    bad = flowgate.push_config(gateway["id"], configs("crash", metrics_port=taken_port))
    wait_for(lambda: gw.config_state().get("failed_version") == str(bad), timeout=10)
    gw.wait_log(r"\[CONFIG\] ERROR config version \d+ rolled back to last good")
    gw.wait_log(r"\[GATEWAY\] INFO collector started \(pid \d+", count=2)
    new_pid = wait_for(lambda: gw.pid("collector") != first_pid and gw.pid("collector"))
    assert alive(new_pid)
    assert (gw.state_dir / "config" / "current.yaml").read_text() == good_config
    assert gw.config_state()["version"] == str(good)
    # what the collector said when it died on the reload
    assert re.search(rf"listen tcp 127.0.0.1:{taken_port}: bind: address already in use", gw.log())
    before = len(otlp_sink.configs(gw.instance_id))
    with gw.app_log.open("a") as fh:
        fh.write("after the rollback\n")
    wait_for(lambda: "good" in otlp_sink.configs(gw.instance_id)[before:], timeout=15)
    wait_for(
        lambda: (
            flowgate.status(gateway["id"])["config"]["remote_config_status"]["status"] == "failed"
        ),
        timeout=10,
    )


def test_sigterm_stops_heartbeats_and_the_collector(flowgate: FlowGate, gateway: Gateways) -> None:
    gw = gateway(REGISTRATION_TOKEN=flowgate.token_via_api("sigterm", max_uses=1))
    gw.start()
    wait_registered(flowgate, gw)
    collector = gw.pid("collector")
    heartbeat = int(gw.wait_log(r"heartbeat loop started \(pid (\d+)")[0])
    assert collector and alive(collector) and alive(heartbeat)

    started = time.monotonic()
    assert gw.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 3, "shutdown should not wait for a heartbeat interval"
    log = gw.log()
    assert log.index("[HEARTBEAT] INFO stopped") < log.index("[GATEWAY] INFO stopped")
    # the real collector got SIGTERM and shut down cleanly before the entrypoint finished
    terminated = [ln for ln in log.splitlines() if "Received signal from OS" in ln]
    assert terminated and '"signal": "terminated"' in terminated[-1]
    assert log.index("Shutdown complete.") < log.index("[GATEWAY] INFO stopped")
    assert "collector exited unexpectedly" not in log
    assert not alive(collector) and not alive(heartbeat)
    assert not (gw.state_dir / "run" / "collector.pid").exists()
    heartbeats = log.count("[HEARTBEAT] INFO ok")
    time.sleep(1.2)
    assert gw.log().count("[HEARTBEAT] INFO ok") == heartbeats


def test_rejected_registration_token_stops_the_gateway(
    flowgate: FlowGate, gateway: Gateways
) -> None:
    gw = gateway(REGISTRATION_TOKEN="definitely-not-a-registration-token")
    gw.start()
    assert gw.wait_exit(timeout=15) == 3
    log = gw.log()
    assert (
        "[ONBOARD] ERROR registration rejected: HTTP 401: Invalid or expired registration token"
        in log
    )
    assert "[GATEWAY] ERROR onboarding failed (exit 3)" in log
    collector = int(re.findall(r"collector started \(pid (\d+)", log)[0])
    assert not alive(collector), "the collector is stopped with the gateway"
    assert not Path(gw.state_dir / "opamp_token").exists()
    assert os.path.isdir(gw.state_dir)
