"""FlowGate's own OpAMP test agent over WebSocket, built on the ``websockets`` library.

It speaks the wire protocol directly (0x00 header + protobuf), so tests control every byte:
full state, bare heartbeats, remote-config status, disconnects and malformed frames.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

REPORTS_STATUS = 0x1
ACCEPTS_REMOTE_CONFIG = 0x2
REPORTS_EFFECTIVE_CONFIG = 0x4
REPORTS_OWN_METRICS = 0x40
ACCEPTS_OPAMP_CONNECTION_SETTINGS = 0x100
REPORTS_HEALTH = 0x800
REPORTS_REMOTE_CONFIG = 0x1000
REPORTS_HEARTBEAT = 0x2000
REPORTS_AVAILABLE_COMPONENTS = 0x4000
DEFAULT_CAPS = (
    REPORTS_STATUS
    | ACCEPTS_REMOTE_CONFIG
    | REPORTS_EFFECTIVE_CONFIG
    | REPORTS_HEALTH
    | REPORTS_REMOTE_CONFIG
    | REPORTS_HEARTBEAT
)
REPORT_FULL_STATE = 0x1

EFFECTIVE_YAML = b"receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"


def _kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
    return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))


def available_components(components: Mapping[str, Iterable[str]]) -> opamp_pb2.AvailableComponents:
    """``AvailableComponents`` shaped as the Collector's OpAMP extension reports it: one entry
    per kind (``receivers``, ``processors``, ...), its sub-components keyed by component type."""
    msg = opamp_pb2.AvailableComponents()
    for kind, types in sorted(components.items()):
        entry = msg.components[kind]
        for ctype in sorted(types):
            entry.sub_component_map[ctype].metadata.append(
                _kv("code.namespace", f"example.com/{kind}/{ctype}")
            )
    msg.hash = hashlib.sha256(msg.SerializeToString(deterministic=True)).digest()
    return msg


class WsAgent:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        uid: bytes | None = None,
        capabilities: int = DEFAULT_CAPS,
        name: str = "ws-agent",
        version: str = "0.115.0",
        instance_id: str | None = None,
        components: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.uid = uid or uuid.uuid4().bytes
        self.capabilities = capabilities
        self.name = name
        self.version = version
        self.instance_id = instance_id or str(uuid.UUID(bytes=self.uid))
        self.seq = 0
        self.ws: ClientConnection | None = None
        self.remote_config_status: opamp_pb2.RemoteConfigStatus | None = None
        #: Reported in every full state (with the ReportsAvailableComponents capability).
        self.components = components
        if components is not None:
            self.capabilities |= REPORTS_AVAILABLE_COMPONENTS

    async def connect(self) -> WsAgent:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.ws = await connect(self.url, additional_headers=headers, compression=None)
        return self

    async def __aenter__(self) -> WsAgent:
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def message(self, **fields: Any) -> opamp_pb2.AgentToServer:
        msg = opamp_pb2.AgentToServer(
            instance_uid=self.uid, sequence_num=self.seq, capabilities=self.capabilities, **fields
        )
        self.seq += 1
        return msg

    def full_state(self) -> opamp_pb2.AgentToServer:
        desc = opamp_pb2.AgentDescription(
            identifying_attributes=[
                _kv("service.name", "io.opentelemetry.collector"),
                _kv("service.version", self.version),
                _kv("service.instance.id", self.instance_id),
            ],
            non_identifying_attributes=[_kv("host.name", self.name), _kv("os.type", "linux")],
        )
        msg = self.message(
            agent_description=desc,
            health=opamp_pb2.ComponentHealth(healthy=True, status="StatusOK"),
            effective_config=opamp_pb2.EffectiveConfig(
                config_map=opamp_pb2.AgentConfigMap(
                    config_map={
                        "": opamp_pb2.AgentConfigFile(body=EFFECTIVE_YAML, content_type="text/yaml")
                    }
                )
            ),
        )
        if self.remote_config_status is not None:
            msg.remote_config_status.CopyFrom(self.remote_config_status)
        if self.components is not None:
            msg.available_components.CopyFrom(available_components(self.components))
        return msg

    async def send(self, msg: opamp_pb2.AgentToServer) -> None:
        assert self.ws is not None
        await self.ws.send(b"\x00" + msg.SerializeToString())

    async def recv(self, timeout: float = 5) -> opamp_pb2.ServerToAgent:
        assert self.ws is not None
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes), "OpAMP replies must be binary frames"
        assert data[:1] == b"\x00", "OpAMP WebSocket header must be 0"
        reply = opamp_pb2.ServerToAgent()
        reply.ParseFromString(data[1:])
        return reply

    async def request(self, msg: opamp_pb2.AgentToServer) -> opamp_pb2.ServerToAgent:
        await self.send(msg)
        return await self.recv()

    async def report_config(self, config_hash: bytes, status: int, error: str = "") -> None:
        self.remote_config_status = opamp_pb2.RemoteConfigStatus(
            last_remote_config_hash=config_hash, status=status, error_message=error
        )  # type: ignore[arg-type]
        reply = await self.request(self.message(remote_config_status=self.remote_config_status))
        assert not reply.HasField("error_response"), reply
