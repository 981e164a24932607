"""Real agents for the browser tests: REST gateways that heartbeat, and an OpAMP agent.

Both run in background threads with bounded loops (they stop when told, or after
``MAX_SECONDS``), so the pages under test show live, changing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from typing import Any

from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2
from tests.support.api import Org
from tests.support.ws_agent import WsAgent

MAX_SECONDS = 600

#: The OpAMP agent's running configuration: two pipelines, a connector, a failing exporter.
EFFECTIVE_YAML = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318
  hostmetrics:
    collection_interval: 30s
    scrapers:
      cpu: {}
      memory: {}
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
  batch:
    timeout: 5s
exporters:
  otlp/backend:
    endpoint: telemetry.example.com:4317
    tls:
      insecure: false
  debug:
    verbosity: basic
connectors:
  count: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp/backend, count]
    metrics:
      receivers: [otlp, hostmetrics, count]
      processors: [batch]
      exporters: [otlp/backend, debug]
"""


def _kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
    return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))


def _health(healthy: bool, status: str, error: str = "", **children: Any) -> Any:
    return opamp_pb2.ComponentHealth(
        healthy=healthy, status=status, last_error=error, component_health_map=children
    )


class RichWsAgent(WsAgent):
    """The project's OpAMP test agent, reporting a real pipeline and per-component health."""

    def full_state(self) -> opamp_pb2.AgentToServer:
        desc = opamp_pb2.AgentDescription(
            identifying_attributes=[
                _kv("service.name", "io.opentelemetry.collector"),
                _kv("service.version", self.version),
                _kv("service.instance.id", self.instance_id),
            ],
            non_identifying_attributes=[_kv("host.name", self.name), _kv("os.type", "linux")],
        )
        exporter_down = _health(
            False, "StatusRecoverableError", "connection refused: telemetry.example.com:4317"
        )
        ok = _health(True, "StatusOK")
        traces = _health(
            False,
            "StatusRecoverableError",
            **{
                "receiver:otlp": ok,
                "processor:memory_limiter": ok,
                "processor:batch": ok,
                "exporter:otlp/backend": exporter_down,
                "exporter:count": ok,
            },
        )
        metrics = _health(
            False,
            "StatusRecoverableError",
            **{
                "receiver:otlp": ok,
                "receiver:hostmetrics": ok,
                "receiver:count": ok,
                "processor:batch": ok,
                "exporter:otlp/backend": exporter_down,
                "exporter:debug": ok,
            },
        )
        return self.message(
            agent_description=desc,
            health=_health(
                False,
                "StatusRecoverableError",
                **{"pipeline:traces": traces, "pipeline:metrics": metrics},
            ),
            effective_config=opamp_pb2.EffectiveConfig(
                config_map=opamp_pb2.AgentConfigMap(
                    config_map={
                        "": opamp_pb2.AgentConfigFile(
                            body=EFFECTIVE_YAML.encode(), content_type="text/yaml"
                        )
                    }
                )
            ),
        )


class OpampAgentThread:
    """Keeps one OpAMP WebSocket agent connected, heartbeating every few seconds."""

    def __init__(self, url: str, token: str, name: str) -> None:
        self.agent = RichWsAgent(url, token, name=name, version="0.115.1")
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"opamp-{name}", daemon=True)

    def start(self, timeout: float = 15) -> OpampAgentThread:
        self._thread.start()
        if not self.connected.wait(timeout):
            raise RuntimeError(f"OpAMP agent did not connect: {self._error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or ignored at teardown
            self._error = exc

    async def _main(self) -> None:
        async with self.agent:
            await self.agent.request(self.agent.full_state())
            self.connected.set()
            deadline = time.monotonic() + MAX_SECONDS
            while not self._stop.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(2)
                with contextlib.suppress(TimeoutError):
                    await self.agent.request(self.agent.message())


class Heartbeats:
    """Heartbeats a set of REST gateways every ``interval`` seconds in a thread."""

    def __init__(self, org: Org, interval: float = 5) -> None:
        self.org = org
        self.interval = interval
        self.gateways: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)

    def add(self, gateway: dict[str, Any], body: dict[str, Any]) -> None:
        with self._lock:
            self.gateways[gateway["id"]] = (gateway, body)
        self.org.heartbeat(gateway, body).raise_for_status()

    def discard(self, gateway_id: str) -> None:
        with self._lock:
            self.gateways.pop(gateway_id, None)

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            with self._lock:
                batch = list(self.gateways.values())
            for gateway, body in batch:
                with contextlib.suppress(Exception):
                    self.org.heartbeat(gateway, body)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


#: What a failing agent says about a configuration it cannot load (as a Collector would).
APPLY_ERROR = (
    "invalid configuration: exporters::debug: decoding failed: "
    "'verbosity' unsupported value \"loud\""
)


class ApplyingAgentThread:
    """An OpAMP WebSocket agent that behaves like a collector under remote configuration: for
    every config it is sent it reports APPLYING, then APPLIED (with the config's hash), or
    FAILED with :data:`APPLY_ERROR` when the body contains ``fail_on``. Heartbeats every 2 s."""

    def __init__(self, url: str, token: str, name: str, fail_on: str | None = None) -> None:
        self.agent = WsAgent(url, token, name=name, version="0.116.0")
        self.name = name
        self.fail_on = fail_on
        self.received: list[str] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"applying-{name}", daemon=True)

    def start(self, timeout: float = 15) -> ApplyingAgentThread:
        self._thread.start()
        if not self.connected.wait(timeout):
            raise RuntimeError(f"OpAMP agent did not connect: {self._error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() or ignored at teardown
            self._error = exc

    async def _handle(self, msg: opamp_pb2.ServerToAgent) -> None:
        if msg.flags & opamp_pb2.ServerToAgentFlags_ReportFullState:
            await self.agent.send(self.agent.full_state())
        if not msg.HasField("remote_config"):
            return
        body = msg.remote_config.config.config_map[""].body.decode()
        self.received.append(body)
        config_hash = msg.remote_config.config_hash
        for status, error in (
            (opamp_pb2.RemoteConfigStatuses_APPLYING, ""),
            (
                (opamp_pb2.RemoteConfigStatuses_FAILED, APPLY_ERROR)
                if self.fail_on is not None and self.fail_on in body
                else (opamp_pb2.RemoteConfigStatuses_APPLIED, "")
            ),
        ):
            self.agent.remote_config_status = opamp_pb2.RemoteConfigStatus(
                last_remote_config_hash=config_hash,
                status=status,  # type: ignore[arg-type]
                error_message=error,
            )
            await self.agent.send(
                self.agent.message(remote_config_status=self.agent.remote_config_status)
            )
            await asyncio.sleep(0.8)  # long enough to be seen applying

    async def _main(self) -> None:
        async with self.agent:
            reply = await self.agent.request(self.agent.full_state())
            self.connected.set()
            await self._handle(reply)
            deadline = time.monotonic() + MAX_SECONDS
            beat = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await self._handle(await self.agent.recv(timeout=0.5))
                if time.monotonic() - beat >= 2:
                    await self.agent.send(self.agent.message())
                    beat = time.monotonic()
