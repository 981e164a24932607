"""Sans-I/O OpAMP server core: bytes and messages in, replies and state out.

This module decides what FlowGate answers to an ``AgentToServer`` given what it remembers
about the agent. It owns no sockets, clocks (beyond minting UUIDv7s), threads, database
sessions or web-framework objects; the WebSocket and plain-HTTP handlers move bytes, load
and persist :class:`AgentState`, and call in here. Everything is deterministic given its
inputs, except the fresh ``instance_uid`` values minted by :func:`new_instance_uid`.

The rules implemented are those of the OpAMP specification (v0.18 line,
https://github.com/open-telemetry/opamp-spec/blob/main/specification.md): answer every
message, validate ``instance_uid``, keep ``error_response`` exclusive, re-evaluate
capabilities on every message, ask for full state after a sequence gap or for an unknown
agent, merge only the sub-messages that are present, ask for the available-components map
when only its hash is known, gate every offer on the agent's capabilities and send remote
config whenever the agent's reported hash differs.

Concurrency: every function is pure with respect to its arguments. :func:`process` never
mutates the ``state`` it is given; it returns a new :class:`AgentState` that shares unchanged
nested values with the old one, so callers must treat nested values as read-only. Callers
must serialise calls per agent (one message at a time per ``instance_uid``) and persist
``Outcome.state`` before processing the agent's next message.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import math
import operator
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, cast
from urllib.parse import urlsplit

import orjson
from google.protobuf.message import DecodeError

from flowgate.configs.hashing import absorb as _put
from flowgate.configs.hashing import config_hash
from flowgate.core import jsonsafe
from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

__all__ = [
    "ACCEPTS_OPAMP_CONNECTION_SETTINGS",
    "ACCEPTS_REMOTE_CONFIG",
    "BAD_REQUEST",
    "CHANGE_KEYS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "REPORTS_AVAILABLE_COMPONENTS",
    "REPORTS_CONNECTION_SETTINGS_STATUS",
    "REPORTS_EFFECTIVE_CONFIG",
    "REPORTS_HEALTH",
    "REPORTS_OWN_METRICS",
    "REPORTS_PACKAGE_STATUSES",
    "REPORTS_REMOTE_CONFIG",
    "REPORTS_STATUS",
    "REPORT_AVAILABLE_COMPONENTS",
    "REPORT_FULL_STATE",
    "REQUEST_INSTANCE_UID",
    "SERVER_CAPABILITIES",
    "UNAVAILABLE",
    "UNKNOWN_ERROR",
    "AgentState",
    "ConnectionSettingsOffer",
    "MessageTooLargeError",
    "Outcome",
    "ProtocolError",
    "RemoteConfig",
    "TelemetryOffer",
    "agent_capability_names",
    "config_hash",
    "decode_agent_message",
    "describe",
    "duplicate_uid",
    "encode_ws_frame",
    "error_reply",
    "new_instance_uid",
    "parse_ws_frame",
    "process",
    "push_message",
    "unavailable_reply",
    "validate_instance_uid",
]

# --- Protocol constants ------------------------------------------------------------------

# AgentCapabilities bits (plain ints so bitwise arithmetic stays int-typed).
REPORTS_STATUS: Final = int(opamp_pb2.AgentCapabilities_ReportsStatus)
ACCEPTS_REMOTE_CONFIG: Final = int(opamp_pb2.AgentCapabilities_AcceptsRemoteConfig)
REPORTS_EFFECTIVE_CONFIG: Final = int(opamp_pb2.AgentCapabilities_ReportsEffectiveConfig)
REPORTS_PACKAGE_STATUSES: Final = int(opamp_pb2.AgentCapabilities_ReportsPackageStatuses)
ACCEPTS_OPAMP_CONNECTION_SETTINGS: Final = int(
    opamp_pb2.AgentCapabilities_AcceptsOpAMPConnectionSettings
)
REPORTS_HEALTH: Final = int(opamp_pb2.AgentCapabilities_ReportsHealth)
REPORTS_OWN_METRICS: Final = int(opamp_pb2.AgentCapabilities_ReportsOwnMetrics)
REPORTS_REMOTE_CONFIG: Final = int(opamp_pb2.AgentCapabilities_ReportsRemoteConfig)
REPORTS_AVAILABLE_COMPONENTS: Final = int(opamp_pb2.AgentCapabilities_ReportsAvailableComponents)
REPORTS_CONNECTION_SETTINGS_STATUS: Final = int(
    opamp_pb2.AgentCapabilities_ReportsConnectionSettingsStatus
)

# Flag bits.
REQUEST_INSTANCE_UID: Final = int(opamp_pb2.AgentToServerFlags_RequestInstanceUid)
REPORT_FULL_STATE: Final = int(opamp_pb2.ServerToAgentFlags_ReportFullState)
REPORT_AVAILABLE_COMPONENTS: Final = int(opamp_pb2.ServerToAgentFlags_ReportAvailableComponents)

# ServerErrorResponseType values.
UNKNOWN_ERROR: Final = int(opamp_pb2.ServerErrorResponseType_Unknown)
BAD_REQUEST: Final = int(opamp_pb2.ServerErrorResponseType_BadRequest)
UNAVAILABLE: Final = int(opamp_pb2.ServerErrorResponseType_Unavailable)

SERVER_CAPABILITIES: Final = int(
    opamp_pb2.ServerCapabilities_AcceptsStatus
    | opamp_pb2.ServerCapabilities_OffersRemoteConfig
    | opamp_pb2.ServerCapabilities_AcceptsEffectiveConfig
    | opamp_pb2.ServerCapabilities_OffersConnectionSettings
)
"""Sent in ``ServerToAgent.capabilities`` of every non-error reply."""

DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
"""Spec default message size limit; enforce it after decompression."""

CHANGE_KEYS: Final = frozenset(
    {
        "sequence",
        "capabilities",
        "description",
        "health",
        "effective_config",
        "remote_config_status",
        "available_components",
        "custom_capabilities",
        "package_statuses",
        "connection_settings_status",
        "disconnect",
        "new_instance_uid",
        "offers",
    }
)
"""Every value :attr:`Outcome.changed` may contain."""

# A capability the agent advertises implies it reports the corresponding field in a full
# state report. Used only after a sequence gap or for an unknown agent, exactly like the
# opamp-go example server, so an agent that legitimately has nothing to report (Python
# before its first config, opamp-spec #379) costs at most one extra round trip per gap.
_IMPLIED_FIELDS: Final = (
    (REPORTS_EFFECTIVE_CONFIG, "effective_config"),
    (REPORTS_REMOTE_CONFIG, "remote_config_status"),
    (REPORTS_HEALTH, "health"),
    (REPORTS_PACKAGE_STATUSES, "package_statuses"),
    (REPORTS_AVAILABLE_COMPONENTS, "available_components"),
)

_UID_LEN: Final = 16
_ZERO_UID: Final = bytes(_UID_LEN)
_MAX_VARINT_BYTES: Final = 10


def _enum_short_names(enum_descriptor: Any) -> dict[int, str]:
    # "RemoteConfigStatuses_APPLIED" -> "APPLIED"; the spec prefixes every value with its
    # enum's name because proto enum values share the package namespace.
    return {v.number: v.name.split("_", 1)[1] for v in enum_descriptor.values}


_REMOTE_CONFIG_STATUS_NAMES: Final = _enum_short_names(opamp_pb2.RemoteConfigStatuses.DESCRIPTOR)
_CONNECTION_SETTINGS_STATUS_NAMES: Final = _enum_short_names(
    opamp_pb2.ConnectionSettingsStatuses.DESCRIPTOR
)
_PACKAGE_STATUS_NAMES: Final = _enum_short_names(opamp_pb2.PackageStatusEnum.DESCRIPTOR)
_AGENT_CAPABILITY_NAMES: Final = {
    number: name
    for number, name in _enum_short_names(opamp_pb2.AgentCapabilities.DESCRIPTOR).items()
    if number
}


def agent_capability_names(capabilities: int) -> list[str]:
    """Names of the AgentCapabilities bits set in ``capabilities``, lowest bit first.

    Bits the spec does not define are reported as ``"0x<hex>"`` so nothing is hidden.
    """
    names = [name for bit, name in sorted(_AGENT_CAPABILITY_NAMES.items()) if capabilities & bit]
    unknown = capabilities & ~sum(_AGENT_CAPABILITY_NAMES)
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


# --- Errors ----------------------------------------------------------------------------


class ProtocolError(Exception):
    """The peer violated the OpAMP wire protocol.

    ``str(exc)`` never contains message contents or internals, so it is safe to send back to
    the agent (for example in ``ServerErrorResponse.error_message``) and to log.
    """


class MessageTooLargeError(ProtocolError):
    """The message exceeds the size limit (HTTP 413, WebSocket close code 1009)."""


# --- Framing and decoding -------------------------------------------------------------


def decode_agent_message(
    data: bytes, *, max_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES
) -> opamp_pb2.AgentToServer:
    """Parse an ``AgentToServer`` from protobuf bytes (an HTTP body or a de-framed WS message).

    Empty input is a valid, empty message (the spec allows zero-length messages); it then
    fails :func:`validate_instance_uid` in :func:`process`. Raises :class:`MessageTooLargeError`
    when ``len(data) > max_bytes`` (pass ``None`` to disable the check) and
    :class:`ProtocolError` for any undecodable input; no other exception escapes for
    ``bytes`` input.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise MessageTooLargeError(f"message exceeds the {max_bytes}-byte limit")
    msg = opamp_pb2.AgentToServer()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RecursionError) as exc:
        # RecursionError/ValueError cover the pure-Python protobuf backend on hostile nesting.
        raise ProtocolError("malformed AgentToServer message") from exc
    return msg


def parse_ws_frame(data: bytes) -> bytes:
    """Strip the OpAMP WebSocket header from a binary message and return the protobuf bytes.

    The header is a protobuf varint that must currently be 0 (normally the single byte
    ``0x00``). Raises :class:`ProtocolError` for an empty message, a truncated or overlong
    varint, or a non-zero header. Unlike opamp-go we do not guess at legacy header-less
    frames: the specification defines only header 0, so a non-zero first byte is rejected.
    """
    if not data:
        raise ProtocolError("empty WebSocket message: missing OpAMP header")
    if data[0] == 0:
        return bytes(data[1:])
    header = 0
    for index in range(min(len(data), _MAX_VARINT_BYTES)):
        byte = data[index]
        header |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if header != 0:
                raise ProtocolError(f"unsupported OpAMP WebSocket header {header}; expected 0")
            return bytes(data[index + 1 :])
    if len(data) < _MAX_VARINT_BYTES:
        raise ProtocolError("truncated OpAMP WebSocket header")
    raise ProtocolError("malformed OpAMP WebSocket header: varint longer than 10 bytes")


def encode_ws_frame(msg: opamp_pb2.ServerToAgent) -> bytes:
    """Serialise ``msg`` as a WebSocket binary message: header ``0x00`` then protobuf bytes."""
    body: bytes = msg.SerializeToString()
    return b"\x00" + body


def validate_instance_uid(uid: bytes) -> None:
    """Raise :class:`ProtocolError` unless ``uid`` is a usable 16-byte instance id.

    The spec requires exactly 16 bytes. The all-zero value is also rejected: it is what an
    agent sends when it failed to initialise its id, and accepting it would merge every such
    agent into one record. Legacy 26-character ULID strings (pre-16-byte opamp-go) are not
    accepted.
    """
    if len(uid) != _UID_LEN:
        raise ProtocolError("instance_uid must be 16 bytes")
    if uid == _ZERO_UID:
        raise ProtocolError("instance_uid must not be all zeros")


def new_instance_uid() -> bytes:
    """Mint a fresh instance id: an RFC 9562 UUIDv7 as 16 bytes (never all zeros)."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return value.to_bytes(_UID_LEN, "big")


# --- Offers ------------------------------------------------------------------------------


def _freeze_files(files: Mapping[str, tuple[bytes, str]]) -> Mapping[str, tuple[bytes, str]]:
    frozen: dict[str, tuple[bytes, str]] = {}
    for name, entry in files.items():
        if not isinstance(name, str):
            raise TypeError(f"config file name must be str, not {type(name).__name__}")
        body, content_type = entry
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"config file {name!r}: body must be bytes")
        if not isinstance(content_type, str):
            raise TypeError(f"config file {name!r}: content_type must be str")
        frozen[name] = (bytes(body), content_type)
    return MappingProxyType(frozen)


@dataclass(frozen=True)
class RemoteConfig:
    """The configuration FlowGate wants an agent to run.

    ``files`` maps a file name (``""`` for a single-file agent) to ``(body, content_type)``;
    an empty mapping is a valid config (the supervisor then stops the collector). ``hash``
    must equal :func:`config_hash` of ``files``: :meth:`build` computes it, and the plain
    constructor exists so a caller that stored the hash can rebuild the object without
    rehashing. Offers are decided on the hash alone (elastic PR #609).
    """

    files: Mapping[str, tuple[bytes, str]] = field(hash=False)
    hash: bytes

    def __post_init__(self) -> None:
        if not self.hash:
            raise ValueError("RemoteConfig.hash must be non-empty")
        object.__setattr__(self, "files", _freeze_files(self.files))

    @classmethod
    def build(cls, files: Mapping[str, tuple[bytes, str]]) -> RemoteConfig:
        """Create a config from ``files``, computing its hash."""
        frozen = _freeze_files(files)
        return cls(files=frozen, hash=config_hash(frozen))

    def to_proto(self) -> opamp_pb2.AgentRemoteConfig:
        """The ``AgentRemoteConfig`` to put in ``ServerToAgent.remote_config`` (built once per
        object; callers copy it into their message and never change it)."""
        cached: opamp_pb2.AgentRemoteConfig | None = self.__dict__.get("_proto")
        if cached is None:
            cached = self._build_proto()
            object.__setattr__(self, "_proto", cached)
        return cached

    def _build_proto(self) -> opamp_pb2.AgentRemoteConfig:
        msg = opamp_pb2.AgentRemoteConfig(config_hash=self.hash)
        # Mark `config` present even when empty: "run nothing" is an explicit offer.
        msg.config.SetInParent()
        for name, (body, content_type) in self.files.items():
            entry = msg.config.config_map[name]
            entry.body = body
            entry.content_type = content_type
        return msg


_OFFER_SCHEMES: Final = frozenset({"ws", "wss", "http", "https"})


@dataclass(frozen=True)
class ConnectionSettingsOffer:
    """OpAMP connection settings to offer to agents with ``AcceptsOpAMPConnectionSettings``.

    Agents such as the collector supervisor replace their whole OpAMP client configuration
    with the offer: ``destination_endpoint`` becomes the server URL and ``headers`` replace
    the previous headers, so the offer must carry every header (e.g. ``Authorization``) the
    agent needs to reconnect. ``heartbeat_interval_seconds`` must be > 0 because 0 disables
    heartbeats on WebSocket and is an error for opamp-go HTTP clients (contrib #50268).
    The spec requires ``destination_endpoint`` to be a non-empty WebSocket or HTTP URL.

    ``hash`` is derived (SHA-256 over endpoint, interval and sorted headers) and always sent
    in ``ConnectionSettingsOffers.hash``; opamp-go ignores an offer whose hash it has already
    processed, and agents echo it in ``ConnectionSettingsStatus``.
    """

    headers: Mapping[str, str] = field(hash=False)
    heartbeat_interval_seconds: int
    destination_endpoint: str
    hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        interval = self.heartbeat_interval_seconds
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ValueError("heartbeat_interval_seconds must be a positive integer")
        if interval >= 1 << 64:
            raise ValueError("heartbeat_interval_seconds does not fit in uint64")
        parts = urlsplit(self.destination_endpoint)
        if parts.scheme not in _OFFER_SCHEMES or not parts.netloc:
            raise ValueError(
                "destination_endpoint must be a ws://, wss://, http:// or https:// URL"
            )
        headers = _checked_headers(self.headers)
        object.__setattr__(self, "headers", MappingProxyType(headers))
        digest = hashlib.sha256()
        _put(digest, self.destination_endpoint.encode("utf-8"))
        _put(digest, interval.to_bytes(8, "big"))
        for key in sorted(headers):
            _put(digest, key.encode("utf-8"))
            _put(digest, headers[key].encode("utf-8"))
        object.__setattr__(self, "hash", digest.digest())

    def to_proto(self) -> opamp_pb2.ConnectionSettingsOffers:
        """The ``ConnectionSettingsOffers`` (with ``hash`` and ``opamp`` set) to send."""
        opamp = opamp_pb2.OpAMPConnectionSettings(
            destination_endpoint=self.destination_endpoint,
            heartbeat_interval_seconds=self.heartbeat_interval_seconds,
        )
        for key in sorted(self.headers):
            opamp.headers.headers.add(key=key, value=self.headers[key])
        return opamp_pb2.ConnectionSettingsOffers(hash=self.hash, opamp=opamp)


_TELEMETRY_SCHEMES: Final = frozenset({"http", "https"})


@dataclass(frozen=True)
class TelemetryOffer:
    """Where an agent with ``ReportsOwnMetrics`` should send its own metrics (OTLP/HTTP):
    ``ConnectionSettingsOffers.own_metrics``. ``destination_endpoint`` is the full URL
    (including ``/v1/metrics``); ``headers`` are sent with every export, so they carry the
    credential. ``hash`` is SHA-256 over endpoint and sorted headers; it goes into the
    offer's hash so that a changed destination is offered again.
    """

    headers: Mapping[str, str] = field(hash=False, repr=False)  # carries the token
    destination_endpoint: str
    hash: bytes = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.destination_endpoint)
        if parts.scheme not in _TELEMETRY_SCHEMES or not parts.netloc:
            raise ValueError("destination_endpoint must be an http:// or https:// URL")
        headers = _checked_headers(self.headers)
        object.__setattr__(self, "headers", MappingProxyType(headers))
        digest = hashlib.sha256(b"flowgate.own_metrics.v1")
        _put(digest, self.destination_endpoint.encode("utf-8"))
        for key in sorted(headers):
            _put(digest, key.encode("utf-8"))
            _put(digest, headers[key].encode("utf-8"))
        object.__setattr__(self, "hash", digest.digest())

    def to_proto(self) -> opamp_pb2.TelemetryConnectionSettings:
        settings = opamp_pb2.TelemetryConnectionSettings(
            destination_endpoint=self.destination_endpoint
        )
        for key in sorted(self.headers):
            settings.headers.headers.add(key=key, value=self.headers[key])
        return settings


def _checked_headers(given: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in given.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ValueError("headers must map non-empty str names to str values")
        if any(c in key + value for c in "\r\n\0"):
            raise ValueError(f"header {key!r} contains a forbidden control character")
        headers[key] = value
    return headers


@dataclass(frozen=True)
class _Offers:
    """The connection settings due to one agent (each part allowed by its capabilities)."""

    opamp: ConnectionSettingsOffer | None
    own_metrics: TelemetryOffer | None
    hash: bytes

    def to_proto(self) -> opamp_pb2.ConnectionSettingsOffers:
        if self.opamp is not None:
            offers = self.opamp.to_proto()
        else:
            offers = opamp_pb2.ConnectionSettingsOffers()
        offers.hash = self.hash
        if self.own_metrics is not None:
            offers.own_metrics.CopyFrom(self.own_metrics.to_proto())
        return offers


def _settings_offer(
    caps: int, opamp: ConnectionSettingsOffer | None, own_metrics: TelemetryOffer | None
) -> _Offers | None:
    """What of ``opamp`` and ``own_metrics`` an agent with capabilities ``caps`` may get.
    With only the OpAMP part the hash is the OpAMP offer's own hash (as before own metrics
    existed); with own metrics it covers both parts, so a change of either is offered again.
    Cheap on the hot path: no proto is built and the combined hash is cached."""
    opamp = opamp if opamp is not None and caps & ACCEPTS_OPAMP_CONNECTION_SETTINGS else None
    own = own_metrics if own_metrics is not None and caps & REPORTS_OWN_METRICS else None
    if own is None:
        return _Offers(opamp, None, opamp.hash) if opamp is not None else None
    combined = _combined_hash(opamp.hash if opamp is not None else b"", own.hash)
    return _Offers(opamp, own, combined)


@functools.lru_cache(maxsize=4096)
def _combined_hash(opamp_hash: bytes, own_metrics_hash: bytes) -> bytes:
    digest = hashlib.sha256(b"flowgate.connection_settings.v1")
    _put(digest, opamp_hash)
    _put(digest, own_metrics_hash)
    return digest.digest()


# --- Agent state -----------------------------------------------------------------------

_STATE_FORMAT: Final = 1
#: The AgentState fields that hold what the agent reported (stored as JSON, size-checked).
_REPORT_FIELDS: Final = (
    "identifying_attributes",
    "non_identifying_attributes",
    "health",
    "effective_config",
    "remote_config_status",
    "available_components",
    "custom_capabilities",
    "package_statuses",
    "connection_settings_status",
)


@dataclass(slots=True)
class AgentState:
    """Everything FlowGate remembers about one agent, as plain JSON-compatible values.

    Populated only from what the agent reported; fields stay at their defaults until the
    corresponding sub-message is first received, and are never cleared because a later
    message omits them. Shapes:

    * ``identifying_attributes`` / ``non_identifying_attributes``: attribute name -> value;
      AnyValue becomes str/bool/int/float/list/dict/None, bytes become base64 text and
      non-finite doubles become ``"nan"``/``"inf"``/``"-inf"``.
    * ``health``: ``{"healthy", "status", "last_error", "start_time_unix_nano",
      "status_time_unix_nano", "attributes", "components": {name: same shape}}``.
    * ``effective_config``: file name -> ``{"body": text, "content_type"}`` (body decoded as
      UTF-8 with replacement characters).
    * ``remote_config_status``: ``{"last_remote_config_hash": hex, "status":
      "UNSET"|"APPLIED"|"APPLYING"|"FAILED", "error_message"}``.
    * ``available_components``: ``{"hash": hex, "components": {id: {"metadata",
      "components"}} | None}``; ``None`` while only the hash is known.
    * ``package_statuses``: ``{"packages": {name: {...}}, "server_provided_all_packages_hash":
      hex, "error_message"}``.
    * ``connection_settings_status``: ``{"last_connection_settings_hash": hex, "status",
      "error_message"}``.
    * ``remote_config_offered_hash`` / ``connection_settings_offered_hash``: hex hash of the
      last offer sent; used only for agents that do not report a status for that offer, so
      they get each distinct offer once instead of on every message.
    """

    instance_uid: bytes
    sequence_num: int | None = None
    capabilities: int = 0
    identifying_attributes: dict[str, Any] = field(default_factory=dict)
    non_identifying_attributes: dict[str, Any] = field(default_factory=dict)
    health: dict[str, Any] | None = None
    effective_config: dict[str, dict[str, str]] | None = None
    remote_config_status: dict[str, Any] | None = None
    available_components: dict[str, Any] | None = None
    custom_capabilities: list[str] = field(default_factory=list)
    package_statuses: dict[str, Any] | None = None
    connection_settings_status: dict[str, Any] | None = None
    disconnected: bool = False
    remote_config_offered_hash: str | None = None
    connection_settings_offered_hash: str | None = None

    def reports_json(self) -> bytes:
        """The reports as the UTF-8 JSON the database is given (orjson, as the engines encode
        it). Raises ``orjson.JSONEncodeError`` for what orjson cannot encode."""
        return orjson.dumps(
            dict(zip(_REPORT_FIELDS, _REPORT_VALUES(self), strict=True)), option=_ORJSON
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (deep copy); ``from_json`` restores it exactly.

        The reports hold JSON values only (checked when received), so the deep copy is a
        decode of :meth:`reports_json`: about a tenth of ``copy.deepcopy`` for a typical state.
        """
        return {**self._head(), **orjson.loads(self.reports_json())}

    def snapshot_json(
        self, updated_at: Mapping[str, str], reports: bytes | None = None
    ) -> orjson.Fragment:
        """:meth:`to_json` with ``updated_at`` added, as the JSON text the database stores
        (the engines embed an ``orjson.Fragment`` as it is). ``reports`` is this state's
        :meth:`reports_json` when the caller has it already (:attr:`Outcome.reports_json`):
        a status report is then encoded once, for its size check, its snapshot and its row."""
        head = orjson.dumps({**self._head(), "updated_at": updated_at}, option=_ORJSON)
        body = reports if reports is not None else self.reports_json()
        return orjson.Fragment(head[:-1] + b"," + body[1:])

    def _head(self) -> dict[str, Any]:
        return {
            "format": _STATE_FORMAT,
            "instance_uid": self.instance_uid.hex(),
            "sequence_num": self.sequence_num,
            "capabilities": self.capabilities,
            "disconnected": self.disconnected,
            "remote_config_offered_hash": self.remote_config_offered_hash,
            "connection_settings_offered_hash": self.connection_settings_offered_hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentState:
        """Rebuild a state from :meth:`to_json` output; missing optional keys take defaults.

        Raises ``ValueError`` for an unknown format version or a missing/invalid uid.
        """
        fmt = data.get("format", _STATE_FORMAT)
        if fmt != _STATE_FORMAT:
            raise ValueError(f"unsupported AgentState format {fmt!r}")
        try:
            uid = bytes.fromhex(data["instance_uid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("AgentState JSON needs a hex instance_uid") from exc
        seq = data.get("sequence_num")
        return cls(
            instance_uid=uid,
            sequence_num=None if seq is None else int(seq),
            capabilities=int(data.get("capabilities", 0)),
            identifying_attributes=copy.deepcopy(dict(data.get("identifying_attributes") or {})),
            non_identifying_attributes=copy.deepcopy(
                dict(data.get("non_identifying_attributes") or {})
            ),
            health=copy.deepcopy(data.get("health")),
            effective_config=copy.deepcopy(data.get("effective_config")),
            remote_config_status=copy.deepcopy(data.get("remote_config_status")),
            available_components=copy.deepcopy(data.get("available_components")),
            custom_capabilities=[str(c) for c in data.get("custom_capabilities") or ()],
            package_statuses=copy.deepcopy(data.get("package_statuses")),
            connection_settings_status=copy.deepcopy(data.get("connection_settings_status")),
            disconnected=bool(data.get("disconnected", False)),
            remote_config_offered_hash=data.get("remote_config_offered_hash"),
            connection_settings_offered_hash=data.get("connection_settings_offered_hash"),
        )


_STATE_VALUES: Final = operator.attrgetter(*(f.name for f in fields(AgentState)))
_REPORT_VALUES: Final = operator.attrgetter(*_REPORT_FIELDS)
_ORJSON: Final = orjson.OPT_NON_STR_KEYS


def _copy_state(state: AgentState) -> AgentState:
    """A shallow copy (nested values shared, see the module docstring): a tenth of what
    ``copy.copy`` costs, and :func:`process` makes one for every message."""
    return AgentState(*_STATE_VALUES(state))


_WELL_KNOWN_ATTRIBUTES: Final = (
    "service.name",
    "service.namespace",
    "service.version",
    "service.instance.id",
    "host.name",
    "host.arch",
    "os.type",
    "os.description",
)


def describe(state: AgentState) -> dict[str, Any]:
    """Flatten the agent's description into one attribute lookup.

    Identifying attributes win over non-identifying ones with the same name. The
    well-known keys (``service.name``, ``service.namespace``, ``service.version``,
    ``service.instance.id``, ``host.name``, ``host.arch``, ``os.type``,
    ``os.description``) are always present, ``None`` when not reported.
    """
    flat: dict[str, Any] = dict.fromkeys(_WELL_KNOWN_ATTRIBUTES)
    flat.update(state.non_identifying_attributes)
    flat.update(state.identifying_attributes)
    return flat


# --- Decoding reported sub-messages into JSON values -------------------------------------


# Every report becomes JSON stored in the database, so each conversion is bounded: ``depth`` is
# the nesting level the container it builds would have (the report's root object is 1). Past
# jsonsafe's limit a conversion stops descending and leaves an empty object at that level,
# which _checked() then refuses with its path; so recursion here is bounded whatever nesting
# the protobuf parser allowed, and nothing too deep is ever stored.
_MAX_DEPTH: Final = jsonsafe.AGENT_REPORT.depth


def _checked(value: Any, what: str) -> Any:
    """``value`` if it is safe to store as one report, else :class:`jsonsafe.UnsafeJSON`."""
    jsonsafe.check(value, what, jsonsafe.AGENT_REPORT)
    return value


#: Strings up to this length are interned as they are decoded.
_SHARED_MAX: Final = 64


def _shared(text: str) -> str:
    """``text``, interned when short: thousands of agents report the same attribute names,
    component names and statuses (``service.name``, ``StatusOK``, ``linux``, ...), and each
    decoded copy would otherwise live on in its agent's hot state (~50 B each)."""
    return sys.intern(text) if len(text) <= _SHARED_MAX else text


def _any_value(value: anyvalue_pb2.AnyValue, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _shared(value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        # NaN/inf are not JSON; keep them visible as text instead of failing persistence.
        return number if math.isfinite(number) else repr(number)
    if kind == "array_value":
        if depth > _MAX_DEPTH:
            return {}
        return [_any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values, depth)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _attributes(pairs: Iterable[anyvalue_pb2.KeyValue], depth: int = 1) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        return {}
    # Duplicate keys are a sender bug; the last one wins, as in OTel attribute maps.
    return {_shared(kv.key): _any_value(kv.value, depth + 1) for kv in pairs}


def _health(health: opamp_pb2.ComponentHealth, depth: int = 1) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        return {}
    return {
        "healthy": health.healthy,
        "status": _shared(health.status),
        "last_error": health.last_error,
        "start_time_unix_nano": health.start_time_unix_nano,
        "status_time_unix_nano": health.status_time_unix_nano,
        "attributes": _attributes(health.attributes, depth + 1),
        "components": {
            _shared(name): _health(sub, depth + 2)
            for name, sub in sorted(health.component_health_map.items())
        },
    }


def _config_map(config_map: opamp_pb2.AgentConfigMap) -> dict[str, dict[str, str]]:
    return {
        _shared(name): {
            "body": entry.body.decode("utf-8", errors="replace"),
            "content_type": _shared(entry.content_type),
        }
        for name, entry in sorted(config_map.config_map.items())
    }


def _status_name(names: Mapping[int, str], value: int) -> str:
    # proto3 enums are open: a newer agent may send a value this schema does not know.
    return names.get(value, f"UNKNOWN_{value}")


def _remote_config_status(status: opamp_pb2.RemoteConfigStatus) -> dict[str, Any]:
    return {
        "last_remote_config_hash": status.last_remote_config_hash.hex(),
        "status": _status_name(_REMOTE_CONFIG_STATUS_NAMES, status.status),
        "error_message": status.error_message,
    }


def _connection_settings_status(status: opamp_pb2.ConnectionSettingsStatus) -> dict[str, Any]:
    return {
        "last_connection_settings_hash": status.last_connection_settings_hash.hex(),
        "status": _status_name(_CONNECTION_SETTINGS_STATUS_NAMES, status.status),
        "error_message": status.error_message,
    }


def _package_statuses(statuses: opamp_pb2.PackageStatuses) -> dict[str, Any]:
    packages: dict[str, Any] = {}
    for name, pkg in sorted(statuses.packages.items()):
        details = None
        if pkg.HasField("download_details"):
            details = {
                "download_percent": pkg.download_details.download_percent,
                "download_bytes_per_second": pkg.download_details.download_bytes_per_second,
            }
        packages[name] = {
            "name": pkg.name,
            "agent_has_version": pkg.agent_has_version,
            "agent_has_hash": pkg.agent_has_hash.hex(),
            "server_offered_version": pkg.server_offered_version,
            "server_offered_hash": pkg.server_offered_hash.hex(),
            "status": _status_name(_PACKAGE_STATUS_NAMES, pkg.status),
            "error_message": pkg.error_message,
            "download_details": details,
        }
    return {
        "packages": packages,
        "server_provided_all_packages_hash": statuses.server_provided_all_packages_hash.hex(),
        "error_message": statuses.error_message,
    }


def _component_details(details: opamp_pb2.ComponentDetails, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        return {}
    return {
        "metadata": _attributes(details.metadata, depth + 1),
        "components": {
            name: _component_details(sub, depth + 2)
            for name, sub in sorted(details.sub_component_map.items())
        },
    }


# --- Message processing ------------------------------------------------------------------


@dataclass
class Outcome:
    """Result of :func:`process`.

    * ``reply``: the ``ServerToAgent`` to send (every ``AgentToServer`` MUST get one).
    * ``state``: the agent's state after this message. When :attr:`rejected` it is the input
      state unchanged (or a blank placeholder for an unknown agent) and must not be stored.
    * ``changed``: which parts of ``state`` differ from the input (see :data:`CHANGE_KEYS`);
      persist when it is non-empty. ``"sequence"`` changes on almost every message and is
      cheap to write; ``"offers"`` means the offered-hash bookkeeping changed.
    * ``new_instance_uid``: set when the reply assigns the agent a new id. The agent switches
      to it for its next message; re-key the stored state under the new id to keep history
      (otherwise the next message is treated as an unknown agent and asked for full state).
    """

    reply: opamp_pb2.ServerToAgent
    state: AgentState
    changed: frozenset[str]
    remote_config_sent: bool
    connection_settings_sent: bool
    new_instance_uid: bytes | None
    full_state_requested: bool
    #: A message numbered before the agent's goodbye but delivered after it: answered, not
    #: applied (``state`` is the input state), so it cannot bring a departed agent back.
    stale: bool = False
    #: ``state.reports_json()`` when the message changed a report (encoded for the size
    #: check; see :meth:`AgentState.snapshot_json`).
    reports_json: bytes | None = None

    @property
    def rejected(self) -> bool:
        """True when the reply is an ``error_response`` and the message was not applied."""
        return bool(self.reply.HasField("error_response"))


def error_reply(
    instance_uid: bytes, message: str, kind: int = BAD_REQUEST
) -> opamp_pb2.ServerToAgent:
    """An error reply: ``instance_uid`` echoed plus ``error_response``, nothing else.

    The spec makes ``error_response`` exclusive of fields 3..11, which includes
    ``capabilities``, so it is deliberately left unset. BAD_REQUEST and UNKNOWN tell the
    agent not to retry the message.
    """
    return opamp_pb2.ServerToAgent(
        instance_uid=instance_uid,
        error_response=opamp_pb2.ServerErrorResponse(
            # The stub wants the enum wrapper type; at runtime proto enums are plain ints.
            type=cast("opamp_pb2.ServerErrorResponseType", kind),
            error_message=message,
        ),
    )


def unavailable_reply(instance_uid: bytes, retry_after_seconds: float) -> opamp_pb2.ServerToAgent:
    """An UNAVAILABLE error reply with ``retry_info`` (for an already-open WebSocket).

    opamp-go clients ignore this reply's retry hint; prefer HTTP 429/503 with
    ``Retry-After`` where the transport allows. The spec's minimum recommended retry
    interval is 30 s. Raises ``ValueError`` for a negative or non-finite delay.
    """
    if not math.isfinite(retry_after_seconds) or retry_after_seconds < 0:
        raise ValueError("retry_after_seconds must be a finite, non-negative number")
    reply = error_reply(instance_uid, "server is overloaded; retry later", UNAVAILABLE)
    reply.error_response.retry_info.retry_after_nanoseconds = math.ceil(
        retry_after_seconds * 1_000_000_000
    )
    return reply


def _remote_config_due(state: AgentState, desired: RemoteConfig | None) -> bool:
    if desired is None or not state.capabilities & ACCEPTS_REMOTE_CONFIG:
        return False
    wanted = desired.hash.hex()
    if state.remote_config_status is not None:
        # The spec's rule: a reported hash that differs from ours MUST trigger a resend.
        return bool(state.remote_config_status.get("last_remote_config_hash") != wanted)
    if state.capabilities & REPORTS_REMOTE_CONFIG:
        # Will report but has not yet: it may have no config at all, so offer.
        return True
    # Never reports status: offer each distinct config once instead of on every poll.
    return state.remote_config_offered_hash != wanted


def _connection_settings_due(state: AgentState, offer: _Offers | None) -> bool:
    if offer is None:  # nothing this agent's capabilities allow
        return False
    wanted = offer.hash.hex()
    if state.connection_settings_status is not None:
        return bool(state.connection_settings_status.get("last_connection_settings_hash") != wanted)
    # Accepting an offer makes the agent reconnect, so without a status report offer each
    # distinct settings hash once (and again after a sequence gap, see process()).
    return state.connection_settings_offered_hash != wanted


_REPORT_KEYS: Final = frozenset(
    {
        "description",
        "health",
        "effective_config",
        "remote_config_status",
        "available_components",
        "custom_capabilities",
        "package_statuses",
        "connection_settings_status",
    }
)


def _check_state_size(state: AgentState) -> bytes | None:
    """The reports' JSON (:meth:`AgentState.reports_json`; None when orjson cannot encode
    them); raise :class:`jsonsafe.UnsafeJSON` when all reports together are over
    :data:`jsonsafe.AGENT_STATE_BYTES` (each report alone is within its own limit).

    The size is that of the UTF-8 JSON the database is given (orjson, as the engines encode
    it): a tenth of ``json.dumps``, and this runs for every message that changes a report (a
    10k-agent rollout: 10k status reports)."""
    try:
        encoded = state.reports_json()
    except (orjson.JSONEncodeError, RecursionError):
        return None  # only a state stored before these checks; the new reports passed them
    if len(encoded) > jsonsafe.AGENT_STATE_BYTES:
        limit = jsonsafe.AGENT_STATE_BYTES // jsonsafe.MIB
        raise jsonsafe.UnsafeJSON("agent state", f"all reports together larger than {limit} MiB")
    return encoded


def _lacks_full_state(msg: opamp_pb2.AgentToServer) -> bool:
    if not msg.HasField("agent_description"):
        return True
    caps = msg.capabilities
    return any(caps & bit and not msg.HasField(name) for bit, name in _IMPLIED_FIELDS)


def _rejected(msg: opamp_pb2.AgentToServer, state: AgentState | None, message: str) -> Outcome:
    placeholder = state if state is not None else AgentState(instance_uid=bytes(msg.instance_uid))
    return Outcome(
        reply=error_reply(msg.instance_uid, message),
        state=placeholder,
        changed=frozenset(),
        remote_config_sent=False,
        connection_settings_sent=False,
        new_instance_uid=None,
        full_state_requested=False,
    )


def _sent_before_goodbye(msg: opamp_pb2.AgentToServer, state: AgentState | None) -> bool:
    # Some clients build payloads ahead and send from two threads (the Python client does),
    # so a heartbeat numbered before agent_disconnect can arrive after it.
    return (
        state is not None
        and state.disconnected
        and state.sequence_num is not None
        and msg.sequence_num < state.sequence_num
        and not msg.HasField("agent_disconnect")
    )


def duplicate_uid(*, shared_credential: bool, live_elsewhere: bool) -> bool:
    """Whether a message's instance_uid is a clash that earns the agent a new uid.

    Only agents on a credential many agents share (a registration token) can clash: cloned
    hosts that start with the same uid. Two connections presenting one gateway's own OpAMP
    token with one uid are the same agent reconnecting before its old socket closed.
    """
    return shared_credential and live_elsewhere


def process(
    msg: opamp_pb2.AgentToServer,
    state: AgentState | None,
    *,
    desired_config: RemoteConfig | None = None,
    connection_settings: ConnectionSettingsOffer | None = None,
    own_metrics: TelemetryOffer | None = None,
    duplicate: bool = False,
    known_components: Mapping[str, Mapping[str, Any]] | None = None,
) -> Outcome:
    """Apply one ``AgentToServer`` to the agent's state and build the reply.

    ``state`` is what is stored for ``msg.instance_uid`` (``None`` for an unknown agent);
    its ``instance_uid`` must match the message's, else ``ValueError`` (a caller bug).
    ``desired_config`` / ``connection_settings`` are what FlowGate wants this agent to have;
    they are offered only when the agent's current capabilities allow it and its reported
    (or, for agents that never report, last offered) hash differs. ``duplicate`` tells the
    core that another live connection already uses this uid, which earns the agent a new
    one. ``own_metrics`` is where an agent with ``ReportsOwnMetrics`` should send its own
    metrics; it travels in ``connection_settings`` too (see :func:`_settings_offer`).
    ``known_components`` maps a hex AvailableComponents hash to its component map, learned
    from the agent's peers (the caller's choice: FlowGate's are the same organisation's), so
    agents of the same build need not each send the full map, and all hold the same object.

    A message with an invalid ``instance_uid`` is rejected with a BAD_REQUEST
    ``error_response`` and leaves the state untouched; so is one with a changed report that
    cannot be stored (over :data:`jsonsafe.AGENT_REPORT`, or all reports together over
    :data:`jsonsafe.AGENT_STATE_BYTES`), with a message naming the report. An
    ``agent_disconnect`` message is merged and answered with a bare acknowledgement (no offers
    or flags for a departing agent); a message numbered before that goodbye but delivered
    after it is answered the same way and not applied (``Outcome.stale``). Never raises for
    any decodable message.
    """
    try:
        validate_instance_uid(msg.instance_uid)
    except ProtocolError as exc:
        return _rejected(msg, state, str(exc))
    uid: bytes = msg.instance_uid
    if state is not None and state.instance_uid != uid:
        raise ValueError("state belongs to a different instance_uid than the message")

    old = state if state is not None else AgentState(instance_uid=uid)
    if _sent_before_goodbye(msg, state):
        return Outcome(
            reply=opamp_pb2.ServerToAgent(instance_uid=uid, capabilities=SERVER_CAPABILITIES),
            state=old,
            changed=frozenset(),
            remote_config_sent=False,
            connection_settings_sent=False,
            new_instance_uid=None,
            full_state_requested=False,
            stale=True,
        )
    new = _copy_state(old)
    changed: set[str] = set()

    seq: int = msg.sequence_num
    lost = state is None or old.sequence_num is None or seq != old.sequence_num + 1
    if seq != old.sequence_num:
        new.sequence_num = seq
        changed.add("sequence")

    caps: int = msg.capabilities
    if caps != old.capabilities:
        new.capabilities = caps
        changed.add("capabilities")
    gained = caps & ~old.capabilities
    if lost or gained & ACCEPTS_REMOTE_CONFIG:
        # After a gap the agent may have missed our last offer; re-offer once.
        new.remote_config_offered_hash = None
    if lost or gained & (ACCEPTS_OPAMP_CONNECTION_SETTINGS | REPORTS_OWN_METRICS):
        new.connection_settings_offered_hash = None

    try:
        _merge_reported(msg, old, new, changed)
        request_components = _merge_available_components(
            msg, old, new, changed, lost, known_components
        )
        reports_json = _check_state_size(new) if changed & _REPORT_KEYS else None
    except jsonsafe.UnsafeJSON as exc:
        # A report that cannot be stored: apply none of the message (BAD_REQUEST: the agent
        # must not retry it as is), so nothing un-decodable or giant reaches the database.
        return _rejected(msg, state, str(exc))

    disconnecting = bool(msg.HasField("agent_disconnect"))
    if disconnecting != old.disconnected:
        new.disconnected = disconnecting
        changed.add("disconnect")

    reply = opamp_pb2.ServerToAgent(instance_uid=uid, capabilities=SERVER_CAPABILITIES)
    full_state = False
    new_uid: bytes | None = None
    config_sent = False
    settings_sent = False
    if not disconnecting:
        flags = 0
        if lost and _lacks_full_state(msg):
            flags |= REPORT_FULL_STATE
            full_state = True
        if request_components:
            flags |= REPORT_AVAILABLE_COMPONENTS
        if flags:
            reply.flags = flags

        if duplicate or msg.flags & REQUEST_INSTANCE_UID:
            new_uid = new_instance_uid()
            reply.agent_identification.new_instance_uid = new_uid
            changed.add("new_instance_uid")

        if desired_config is not None and _remote_config_due(new, desired_config):
            reply.remote_config.CopyFrom(desired_config.to_proto())
            new.remote_config_offered_hash = desired_config.hash.hex()
            config_sent = True

        offers = _settings_offer(caps, connection_settings, own_metrics)
        if _connection_settings_due(new, offers):
            assert offers is not None
            reply.connection_settings.CopyFrom(offers.to_proto())
            new.connection_settings_offered_hash = offers.hash.hex()
            settings_sent = True

    if (
        new.remote_config_offered_hash != old.remote_config_offered_hash
        or new.connection_settings_offered_hash != old.connection_settings_offered_hash
    ):
        changed.add("offers")

    return Outcome(
        reply=reply,
        state=new,
        changed=frozenset(changed),
        remote_config_sent=config_sent,
        connection_settings_sent=settings_sent,
        new_instance_uid=new_uid,
        full_state_requested=full_state,
        reports_json=reports_json,
    )


def _merge_reported(
    msg: opamp_pb2.AgentToServer, old: AgentState, new: AgentState, changed: set[str]
) -> None:
    """Copy every present status sub-message into ``new``; absent ones mean "unchanged".

    Raises :class:`jsonsafe.UnsafeJSON` (naming the field) for a changed report that is not
    safe to store; ``new`` is then half-updated and must be discarded.
    """
    if msg.HasField("agent_description"):
        ident = _attributes(msg.agent_description.identifying_attributes)
        non_ident = _attributes(msg.agent_description.non_identifying_attributes)
        if ident != old.identifying_attributes or non_ident != old.non_identifying_attributes:
            new.identifying_attributes = _checked(ident, "agent_description.identifying_attributes")
            new.non_identifying_attributes = _checked(
                non_ident, "agent_description.non_identifying_attributes"
            )
            changed.add("description")
    if msg.HasField("health"):
        health = _health(msg.health)
        if health != old.health:
            new.health = _checked(health, "health")
            changed.add("health")
    if msg.HasField("effective_config"):
        effective = _config_map(msg.effective_config.config_map)
        if effective != old.effective_config:
            new.effective_config = _checked(effective, "effective_config")
            changed.add("effective_config")
    if msg.HasField("remote_config_status"):
        rcs = _remote_config_status(msg.remote_config_status)
        if rcs != old.remote_config_status:
            new.remote_config_status = _checked(rcs, "remote_config_status")
            changed.add("remote_config_status")
    if msg.HasField("package_statuses"):
        packages = _package_statuses(msg.package_statuses)
        if packages != old.package_statuses:
            new.package_statuses = _checked(packages, "package_statuses")
            changed.add("package_statuses")
    if msg.HasField("custom_capabilities"):
        custom = list(msg.custom_capabilities.capabilities)
        if custom != old.custom_capabilities:
            new.custom_capabilities = _checked(custom, "custom_capabilities")
            changed.add("custom_capabilities")
    if msg.HasField("connection_settings_status"):
        css = _connection_settings_status(msg.connection_settings_status)
        if css != old.connection_settings_status:
            new.connection_settings_status = _checked(css, "connection_settings_status")
            changed.add("connection_settings_status")


def _merge_available_components(
    msg: opamp_pb2.AgentToServer,
    old: AgentState,
    new: AgentState,
    changed: set[str],
    lost: bool,
    known: Mapping[str, Mapping[str, Any]] | None,
) -> bool:
    """Merge ``available_components``; return True when the full map must be requested."""
    if not msg.HasField("available_components"):
        return False
    reported = msg.available_components
    digest = reported.hash.hex()
    cached = old.available_components
    request = False
    value: dict[str, Any]
    shared = known.get(digest) if known is not None else None
    if cached is not None and cached.get("hash") == digest and cached.get("components"):
        value = cached
    elif shared:
        # The map agents of this build reported already: one object shared by all of them
        # (read-only, like every nested value here), not a copy per agent (a contrib build's
        # map is tens of KiB as Python objects); a map sent again is not decoded again.
        value = {"hash": digest, "components": shared}
    elif reported.components:
        value = _checked(
            {
                "hash": digest,
                "components": {
                    name: _component_details(details, 3)
                    for name, details in sorted(reported.components.items())
                },
            },
            "available_components",
        )
    else:
        value = {"hash": digest, "components": None}
        # Ask once per hash per unbroken stream: an agent whose map really is empty answers
        # with the hash alone again, and asking every time would ping-pong forever.
        already_asked = cached is not None and cached.get("hash") == digest
        request = lost or not already_asked
    if value != cached:
        new.available_components = value
        changed.add("available_components")
    return request


def push_message(
    state: AgentState,
    desired_config: RemoteConfig | None,
    *,
    connection_settings: ConnectionSettingsOffer | None = None,
    own_metrics: TelemetryOffer | None = None,
) -> opamp_pb2.ServerToAgent | None:
    """An unprompted ``ServerToAgent`` for a WebSocket push, or ``None`` if nothing is due.

    Applies the same capability and hash rules as :func:`process` to the stored state; never
    pushes to a disconnected agent. The push is not recorded in ``state``: for an agent that
    does not report remote-config (or connection-settings) status, the next
    :func:`process` call may offer the same thing once more, which agents treat as a no-op.
    """
    if state.disconnected:
        return None
    send_config = desired_config is not None and _remote_config_due(state, desired_config)
    offers = _settings_offer(state.capabilities, connection_settings, own_metrics)
    send_settings = _connection_settings_due(state, offers)
    if not (send_config or send_settings):
        return None
    msg = opamp_pb2.ServerToAgent(instance_uid=state.instance_uid, capabilities=SERVER_CAPABILITIES)
    if send_config and desired_config is not None:
        msg.remote_config.CopyFrom(desired_config.to_proto())
    if send_settings and offers is not None:
        msg.connection_settings.CopyFrom(offers.to_proto())
    return msg
