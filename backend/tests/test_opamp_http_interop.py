"""Interop with a client nobody here wrote: PyPI's ``opentelemetry-opamp-client`` (HTTP)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._opamp import MessageData, OpAMPAgent, OpAMPCallbacks, OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2 as client_pb2

from tests.support.api import Org, new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.server import LiveServer


class Recorder(OpAMPCallbacks):
    """Applies JSON remote configs and reports APPLIED, as a real agent would."""

    def __init__(self) -> None:
        self.configs: list[dict[str, Any]] = []
        self.errors: list[Any] = []
        self.lock = threading.Lock()

    def on_message(self, agent: OpAMPAgent, client: OpAMPClient, message: MessageData) -> None:
        if message.remote_config is None:
            return
        with self.lock:
            for _name, decoded in OpAMPClient.decode_remote_config(message.remote_config):
                self.configs.append(dict(decoded))
        status = client.update_remote_config_status(
            remote_config_hash=message.remote_config.config_hash,
            status=client_pb2.RemoteConfigStatuses_APPLIED,
            error_message="",
        )
        if status is not None:
            agent.send(client.build_remote_config_status_response_message(status))

    def on_error(self, agent: OpAMPAgent, client: OpAMPClient, error: Any) -> None:
        self.errors.append(error)


class PythonAgent:
    """An OpAMPAgent of the PyPI client, with a count of full-state messages it built."""

    def __init__(self, server: LiveServer, token: str, instance: str, path: str = "/v1/opamp"):
        self.callbacks = Recorder()
        self.client = OpAMPClient(
            endpoint=server.url + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout_millis=5000,
            agent_identifying_attributes={
                "service.name": "py-agent",
                "service.instance.id": instance,
                "service.version": "2.3.4",
            },
            agent_non_identifying_attributes={"host.name": f"host-{instance}", "os.type": "linux"},
        )
        self.full_states = 0
        build = self.client.build_full_state_message

        def counting() -> bytes:
            self.full_states += 1
            return build()

        self.client.build_full_state_message = counting  # type: ignore[method-assign]
        self.agent = OpAMPAgent(
            interval=1, callbacks=self.callbacks, client=self.client, initial_backoff=0.2
        )

    def start(self) -> PythonAgent:
        self.agent.start()
        return self

    def stop(self) -> None:
        self.agent.stop(timeout=5)


@pytest.fixture
def agents() -> Iterator[list[PythonAgent]]:
    started: list[PythonAgent] = []
    yield started
    for agent in started:
        agent.stop()


def gateway_named(org: Org, name: str) -> dict[str, Any] | None:
    items = org.get("/api/v1/gateways", name=name).json()["items"]
    return items[0] if items else None


def test_connects_with_opamp_token(org: Org, agents: list[PythonAgent]) -> None:
    gw = org.register(name="py-gw")
    agents.append(PythonAgent(org.server, gw["opamp_token"], "py-a").start())
    status = wait_for(
        lambda: (
            (s := org.get(f"/api/v1/gateways/{gw['id']}/status").json())["health"]["status"]
            == "healthy"
            and s
        )
    )
    assert status["version"]["agent_version"] == "2.3.4"
    assert "ReportsHeartbeat" in status["version"]["capabilities"]
    listed = org.get(f"/api/v1/gateways/{gw['id']}").json()
    assert listed["transport"] == "opamp-http"
    assert listed["opamp_instance_uid"]


def test_enrols_with_registration_token(org: Org, agents: list[PythonAgent]) -> None:
    token = org.registration_token(max_uses=None)
    agents.append(PythonAgent(org.server, token, "py-b").start())
    gw = wait_for(lambda: gateway_named(org, "host-py-b"))
    assert gw["instance_id"] == "py-b"
    assert gw["hostname"] == "host-py-b"
    wait_for(
        lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["health"]["status"] == "healthy"
    )


def test_receives_json_remote_config_and_reports_applied(
    org: Org, agents: list[PythonAgent]
) -> None:
    gw = org.register(name="py-cfg")
    py = PythonAgent(org.server, gw["opamp_token"], "py-c", path="/api/v1/opamp/v1/opamp")
    agents.append(py.start())
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active")
    config = {"sampling": {"ratio": 0.25}, "exporters": ["otlp"]}
    resp = org.admin.put(
        f"/api/v1/gateways/{gw['id']}/remote-config",
        params={"org_id": org.id},
        json={"config_yaml": json.dumps(config), "content_type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["delivery"] == "queued"  # HTTP agents get it on their next poll
    wait_for(lambda: py.callbacks.configs)
    assert py.callbacks.configs[0] == config
    cfg = wait_for(
        lambda: (
            (c := org.get(f"/api/v1/gateways/{gw['id']}/config").json())["applied_config_version"]
            == 1
            and c
        )
    )
    assert cfg["remote_config_status"]["status"] == "applied"
    assert cfg["remote_config_status"]["config_hash"] == resp.json()["config_hash"]
    assert not py.callbacks.errors


def test_disconnect_marks_inactive(org: Org) -> None:
    gw = org.register(name="py-bye")
    py = PythonAgent(org.server, gw["opamp_token"], "py-d").start()
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active")
    py.stop()  # sends AgentDisconnect
    gone = wait_for(
        lambda: (g := org.get(f"/api/v1/gateways/{gw['id']}").json())["status"] == "inactive" and g
    )
    assert gone["health"] == {"status": "offline", "health_score": 0}


def test_survives_server_restart_with_full_state(
    make_server: Any, agents: list[PythonAgent]
) -> None:
    live: LiveServer = make_server()
    org = new_org(live, superuser_client(live))
    gw = org.register(name="py-restart")
    py = PythonAgent(live, gw["opamp_token"], "py-e")
    agents.append(py.start())
    wait_for(lambda: org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "active")
    before = py.full_states
    live.restart()
    org.admin = superuser_client(live)
    # After the restart the server does not trust its stored sequence number and asks for
    # full state; the client answers with one.
    wait_for(lambda: py.full_states > before, timeout=20)
    status = wait_for(
        lambda: (
            (s := org.get(f"/api/v1/gateways/{gw['id']}/status").json())["health"]["status"]
            == "healthy"
            and s
        ),
        timeout=20,
    )
    assert status["version"]["agent_version"] == "2.3.4"
