"""Message-level tests of the sans-I/O OpAMP core (no sockets, no database).

Each test names the rule of the OpAMP specification or the client quirk it pins down
(https://github.com/open-telemetry/opamp-spec/blob/main/specification.md).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from flowgate.opamp import core
from flowgate.opamp.core import (
    ACCEPTS_OPAMP_CONNECTION_SETTINGS,
    ACCEPTS_REMOTE_CONFIG,
    BAD_REQUEST,
    CHANGE_KEYS,
    REPORT_AVAILABLE_COMPONENTS,
    REPORT_FULL_STATE,
    REPORTS_AVAILABLE_COMPONENTS,
    REPORTS_CONNECTION_SETTINGS_STATUS,
    REPORTS_EFFECTIVE_CONFIG,
    REPORTS_HEALTH,
    REPORTS_REMOTE_CONFIG,
    REPORTS_STATUS,
    SERVER_CAPABILITIES,
    UNAVAILABLE,
    AgentState,
    ConnectionSettingsOffer,
    Outcome,
    ProtocolError,
    RemoteConfig,
    agent_capability_names,
    config_hash,
    describe,
    error_reply,
    new_instance_uid,
    process,
    push_message,
    unavailable_reply,
    validate_instance_uid,
)
from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

U = bytes.fromhex("019a1b2c3d4e7f00a1b2c3d4e5f60718")
PY_CAPS = 0x3007  # Python client default: Status|AcceptsRC|ReportsEC|ReportsRC|Heartbeat
REPORTS_HEARTBEAT = 0x2000
# A supervisor-like opamp-go agent with the optional capabilities switched on.
GO_CAPS = (
    REPORTS_STATUS
    | ACCEPTS_REMOTE_CONFIG
    | REPORTS_EFFECTIVE_CONFIG
    | REPORTS_REMOTE_CONFIG
    | REPORTS_HEALTH
    | REPORTS_HEARTBEAT
    | ACCEPTS_OPAMP_CONNECTION_SETTINGS
    | REPORTS_AVAILABLE_COMPONENTS
    | REPORTS_CONNECTION_SETTINGS_STATUS
)

CONFIG = RemoteConfig.build({"": (b"receivers: {}\n", "text/yaml")})
OFFER = ConnectionSettingsOffer(
    headers={"Authorization": "Bearer t0k3n"},
    heartbeat_interval_seconds=30,
    destination_endpoint="wss://flowgate.example:4320/v1/opamp",
)


# --- Message builders ------------------------------------------------------------------


def kv(key: str, **value: Any) -> anyvalue_pb2.KeyValue:
    return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(**value))


def description(name: str = "io.opentelemetry.collector") -> opamp_pb2.AgentDescription:
    return opamp_pb2.AgentDescription(
        identifying_attributes=[
            kv("service.name", string_value=name),
            kv("service.version", string_value="0.140.0"),
            kv("service.instance.id", string_value="7f0a8c52-0000-7000-8000-000000000001"),
        ],
        non_identifying_attributes=[
            kv("host.name", string_value="gw-1"),
            kv("os.type", string_value="linux"),
        ],
    )


def config_map(files: Mapping[str, tuple[bytes, str]]) -> opamp_pb2.AgentConfigMap:
    return opamp_pb2.AgentConfigMap(
        config_map={
            name: opamp_pb2.AgentConfigFile(body=body, content_type=ct)
            for name, (body, ct) in files.items()
        }
    )


def rc_status(
    hash_: bytes, status: int = opamp_pb2.RemoteConfigStatuses_APPLIED, error: str = ""
) -> opamp_pb2.RemoteConfigStatus:
    return opamp_pb2.RemoteConfigStatus(
        last_remote_config_hash=hash_, status=status, error_message=error
    )


def heartbeat(seq: int, caps: int = PY_CAPS, uid: bytes = U) -> opamp_pb2.AgentToServer:
    return opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=caps)


def full_state(
    seq: int, caps: int = GO_CAPS, uid: bytes = U, **extra: Any
) -> opamp_pb2.AgentToServer:
    """Everything an agent with ``caps`` implies, like opamp-go's first message."""
    msg = opamp_pb2.AgentToServer(
        instance_uid=uid, sequence_num=seq, capabilities=caps, agent_description=description()
    )
    if caps & REPORTS_EFFECTIVE_CONFIG:
        msg.effective_config.config_map.CopyFrom(config_map({"": (b"a: 1\n", "text/yaml")}))
    if caps & REPORTS_REMOTE_CONFIG:
        msg.remote_config_status.SetInParent()  # UNSET, empty hash: "no config yet"
    if caps & REPORTS_HEALTH:
        msg.health.healthy = True
        msg.health.status = "StatusOK"
    if caps & core.REPORTS_PACKAGE_STATUSES:
        msg.package_statuses.SetInParent()
    if caps & REPORTS_AVAILABLE_COMPONENTS:
        msg.available_components.hash = b"\xaa" * 32
    for name, value in extra.items():
        getattr(msg, name).CopyFrom(value)
    return msg


def run(
    msgs: list[opamp_pb2.AgentToServer], state: AgentState | None = None, **kwargs: Any
) -> tuple[AgentState, list[Outcome]]:
    """Feed messages in order, threading the state like the transport does."""
    outcomes = []
    for msg in msgs:
        outcome = process(msg, state, **kwargs)
        outcomes.append(outcome)
        state = outcome.state
    assert state is not None
    return state, outcomes


def set_fields(msg: Any) -> list[str]:
    return [fd.name for fd, _ in msg.ListFields()]


# --- Capabilities and constants --------------------------------------------------------


def test_server_capabilities_are_exactly_the_four_offered_bits() -> None:
    assert SERVER_CAPABILITIES == 0x1 | 0x2 | 0x4 | 0x20 == 0x27
    defined = sum(v.number for v in opamp_pb2.ServerCapabilities.DESCRIPTOR.values)
    assert SERVER_CAPABILITIES & ~defined == 0


def test_agent_capability_names() -> None:
    assert agent_capability_names(PY_CAPS) == [
        "ReportsStatus",
        "AcceptsRemoteConfig",
        "ReportsEffectiveConfig",
        "ReportsRemoteConfig",
        "ReportsHeartbeat",
    ]
    assert agent_capability_names(0x1 | 0x10000) == ["ReportsStatus", "0x10000"]
    assert agent_capability_names(0) == []


def test_change_keys_cover_everything_process_reports() -> None:
    _, outcomes = run(
        [
            full_state(0, custom_capabilities=opamp_pb2.CustomCapabilities(capabilities=["a"])),
            heartbeat(1, GO_CAPS),
        ]
    )
    for outcome in outcomes:
        assert outcome.changed <= CHANGE_KEYS


# --- instance_uid validation and error_response exclusivity ----------------------------


@pytest.mark.parametrize(
    ("uid", "message"),
    [
        (b"", "instance_uid must be 16 bytes"),
        (U[:15], "instance_uid must be 16 bytes"),
        (U + b"\x01", "instance_uid must be 16 bytes"),
        (b"01ARZ3NDEKTSV4RRFFQ69G5FAV", "instance_uid must be 16 bytes"),  # legacy ULID text
        (bytes(16), "instance_uid must not be all zeros"),
    ],
)
def test_invalid_uid_gets_exclusive_bad_request_and_state_is_untouched(
    uid: bytes, message: str
) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        validate_instance_uid(uid)
    assert str(excinfo.value) == message

    known = AgentState(instance_uid=U, sequence_num=4, capabilities=PY_CAPS)
    before = copy.deepcopy(known)
    msg = full_state(5, uid=uid)
    msg.flags = core.REQUEST_INSTANCE_UID
    outcome = process(msg, known, desired_config=CONFIG, connection_settings=OFFER)

    reply = outcome.reply
    assert outcome.rejected
    assert reply.instance_uid == uid  # echoed even though it is wrong
    assert reply.error_response.type == BAD_REQUEST
    assert reply.error_response.error_message == message
    # error_response is exclusive of fields 3..11 - capabilities (7) included.
    assert set_fields(reply) == (["instance_uid", "error_response"] if uid else ["error_response"])
    assert reply.capabilities == 0
    assert outcome.state is known
    assert known == before
    assert outcome.changed == frozenset()
    assert not (outcome.remote_config_sent or outcome.connection_settings_sent)
    assert outcome.new_instance_uid is None


def test_invalid_uid_from_unknown_agent_returns_placeholder_not_to_be_stored() -> None:
    outcome = process(heartbeat(0, uid=U[:15]), None)
    assert outcome.rejected
    assert outcome.state == AgentState(instance_uid=U[:15])
    assert outcome.changed == frozenset()


def test_valid_uid_passes_and_state_for_other_uid_is_a_caller_bug() -> None:
    validate_instance_uid(U)
    with pytest.raises(ValueError, match="different instance_uid"):
        process(heartbeat(1), AgentState(instance_uid=b"\x01" * 16))


def test_error_reply_and_unavailable_reply_shapes() -> None:
    reply = error_reply(U, "nope")
    assert set_fields(reply) == ["instance_uid", "error_response"]
    assert reply.error_response.type == BAD_REQUEST
    assert not reply.error_response.HasField("retry_info")

    busy = unavailable_reply(U, 30)
    assert set_fields(busy) == ["instance_uid", "error_response"]
    assert busy.error_response.type == UNAVAILABLE == 2
    assert busy.error_response.retry_info.retry_after_nanoseconds == 30_000_000_000
    assert unavailable_reply(U, 0.5).error_response.retry_info.retry_after_nanoseconds == (
        500_000_000
    )
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            unavailable_reply(U, bad)


# --- Every reply: uid echoed, capabilities set -----------------------------------------


def test_every_non_error_reply_echoes_uid_and_sets_capabilities() -> None:
    msgs = [
        heartbeat(0),
        full_state(1, caps=PY_CAPS),
        heartbeat(2),
        heartbeat(9),
        opamp_pb2.AgentToServer(
            instance_uid=U, sequence_num=10, agent_disconnect=opamp_pb2.AgentDisconnect()
        ),
    ]
    _, outcomes = run(msgs, desired_config=CONFIG)
    for outcome in outcomes:
        assert not outcome.rejected
        assert outcome.reply.instance_uid == U
        assert outcome.reply.capabilities == SERVER_CAPABILITIES


# --- Sequence numbers and ReportFullState ------------------------------------------------


def test_unknown_agent_bare_heartbeat_gets_report_full_state() -> None:
    # Server restart with state lost, then a compressed message (opamp-go WS reconnect or a
    # Python heartbeat): the server must ask for everything.
    outcome = process(heartbeat(3), None)
    assert outcome.reply.flags == REPORT_FULL_STATE
    assert outcome.full_state_requested
    assert outcome.state.sequence_num == 3
    assert outcome.state.capabilities == PY_CAPS
    assert {"sequence", "capabilities"} <= outcome.changed


def test_unknown_agent_without_description_gets_full_state_even_without_implied_fields() -> None:
    outcome = process(heartbeat(0, caps=REPORTS_STATUS), None)
    assert outcome.reply.flags & REPORT_FULL_STATE


def test_unknown_agent_sending_complete_state_is_not_asked_again() -> None:
    outcome = process(full_state(0), None)
    assert not outcome.reply.flags & REPORT_FULL_STATE
    assert not outcome.full_state_requested


def test_unknown_agent_missing_a_capability_implied_field_is_asked_for_it() -> None:
    # Python's first message: description only, although it advertises ReportsEffectiveConfig.
    msg = opamp_pb2.AgentToServer(
        instance_uid=U, sequence_num=0, capabilities=PY_CAPS, agent_description=description()
    )
    first = process(msg, None)
    assert first.reply.flags & REPORT_FULL_STATE
    # The agent answers with the same fields (it has no effective config yet); the next
    # number is contiguous, so there is no second request - no full-state loop.
    msg.sequence_num = 1
    second = process(msg, first.state)
    assert not second.reply.flags & REPORT_FULL_STATE


@pytest.mark.parametrize("first_seq", [0, 1])
def test_contiguous_heartbeats_never_request_full_state(first_seq: int) -> None:
    # opamp-go and Python start at 0, other clients at 1: neither matters.
    state, outcomes = run(
        [full_state(first_seq)] + [heartbeat(first_seq + i, GO_CAPS) for i in (1, 2, 3)]
    )
    assert [o.reply.flags & REPORT_FULL_STATE for o in outcomes] == [0, 0, 0, 0]
    assert state.sequence_num == first_seq + 3


def test_heartbeat_on_known_agent_changes_only_the_sequence() -> None:
    state, _ = run([full_state(0)])
    outcome = process(heartbeat(1, GO_CAPS), state)
    assert outcome.changed == {"sequence"}
    assert set_fields(outcome.reply) == ["instance_uid", "capabilities"]


def test_sequence_gap_requests_full_state() -> None:
    state, _ = run([full_state(0), heartbeat(1, GO_CAPS)])
    outcome = process(heartbeat(3, GO_CAPS), state)
    assert outcome.reply.flags & REPORT_FULL_STATE
    assert outcome.state.sequence_num == 3


def test_gap_with_complete_state_needs_no_flag() -> None:
    state, _ = run([full_state(0)])
    outcome = process(full_state(5), state)
    assert not outcome.reply.flags & REPORT_FULL_STATE


def test_resent_message_with_same_sequence_is_answered_and_treated_as_a_gap() -> None:
    # Python re-sends pre-built payloads after failures; every message is answered.
    state, _ = run([full_state(0), heartbeat(1, GO_CAPS)])
    outcome = process(heartbeat(1, GO_CAPS), state)
    assert "sequence" not in outcome.changed
    assert outcome.reply.instance_uid == U
    assert outcome.reply.flags & REPORT_FULL_STATE


def test_python_server_restart_trace() -> None:
    # Observed with opentelemetry-opamp-client 0.5b0 across a server restart: two failed
    # heartbeats, seq=5 reaches the new server, which asks for full state; the full state
    # arrives with seq=7 (the client counts every send attempt, so it skipped a number).
    first = process(heartbeat(5), None)
    assert first.reply.flags == REPORT_FULL_STATE
    applied = rc_status(CONFIG.hash)
    full = opamp_pb2.AgentToServer(
        instance_uid=U,
        sequence_num=7,
        capabilities=PY_CAPS,
        agent_description=description("my-python-service"),
        remote_config_status=applied,
        effective_config=opamp_pb2.EffectiveConfig(
            config_map=config_map({"": (b'{"logging_level": "info"}', "application/json")})
        ),
    )
    second = process(full, first.state, desired_config=CONFIG)
    assert second.reply.flags == 0  # complete despite the gap
    assert not second.remote_config_sent  # it already runs CONFIG
    assert second.state.identifying_attributes["service.name"] == "my-python-service"
    assert second.state.remote_config_status == {
        "last_remote_config_hash": CONFIG.hash.hex(),
        "status": "APPLIED",
        "error_message": "",
    }
    third = process(heartbeat(8), second.state, desired_config=CONFIG)
    assert third.reply.flags == 0
    assert third.changed == {"sequence"}


def test_persisted_state_survives_server_restart_bare_reconnect() -> None:
    # opamp-go WS (v0.23+) reconnects with a bare message and continues its numbering; with
    # state restored from the database nothing is missing, so nothing is requested.
    state, _ = run([full_state(0), heartbeat(1, GO_CAPS)])
    restored = AgentState.from_json(json.loads(json.dumps(state.to_json())))
    outcome = process(heartbeat(2, GO_CAPS), restored)
    assert outcome.reply.flags == 0


# --- Merging reported state ---------------------------------------------------------------


def test_absent_sub_messages_never_clear_state() -> None:
    state, _ = run([full_state(0)])
    snapshot = state.to_json()
    state, _ = run([heartbeat(1, GO_CAPS), heartbeat(2, GO_CAPS)], state)
    after = state.to_json()
    assert {k: v for k, v in after.items() if k != "sequence_num"} == {
        k: v for k, v in snapshot.items() if k != "sequence_num"
    }
    assert state.health is not None and state.health["status"] == "StatusOK"
    assert state.effective_config == {"": {"body": "a: 1\n", "content_type": "text/yaml"}}


def test_partial_update_replaces_only_that_part() -> None:
    state, _ = run([full_state(0)])
    update = heartbeat(1, GO_CAPS)
    update.health.healthy = False
    update.health.last_error = "exporter otlp failing"
    update.health.status = "StatusRecoverableError"
    outcome = process(update, state)
    assert outcome.changed == {"sequence", "health"}
    assert outcome.state.health is not None
    assert outcome.state.health["healthy"] is False
    assert outcome.state.health["last_error"] == "exporter otlp failing"
    assert outcome.state.identifying_attributes == state.identifying_attributes


def test_identical_resent_sub_message_is_not_a_change() -> None:
    state, _ = run([full_state(0)])
    outcome = process(full_state(1), state)
    assert outcome.changed == {"sequence"}


def test_process_never_mutates_its_input_state() -> None:
    state, _ = run([full_state(0)])
    before = copy.deepcopy(state)
    update = full_state(7, caps=GO_CAPS & ~ACCEPTS_REMOTE_CONFIG)
    update.agent_description.CopyFrom(description("renamed"))
    update.health.healthy = False
    outcome = process(update, state, desired_config=CONFIG, connection_settings=OFFER)
    assert state == before
    assert outcome.state is not state
    assert outcome.state.identifying_attributes["service.name"] == "renamed"


def test_description_any_values_decode_to_json_values() -> None:
    nested = anyvalue_pb2.AnyValue(
        kvlist_value=anyvalue_pb2.KeyValueList(
            values=[kv("inner", int_value=-5), kv("flag", bool_value=False)]
        )
    )
    msg = heartbeat(0)
    msg.agent_description.identifying_attributes.extend(
        [
            kv("s", string_value="text"),
            kv("b", bool_value=True),
            kv("i", int_value=2**62),
            kv("d", double_value=1.5),
            kv("nan", double_value=float("nan")),
            kv("inf", double_value=float("-inf")),
            kv("bytes", bytes_value=b"\x00\xff"),
            kv(
                "arr",
                array_value=anyvalue_pb2.ArrayValue(
                    values=[anyvalue_pb2.AnyValue(int_value=1), anyvalue_pb2.AnyValue()]
                ),
            ),
            anyvalue_pb2.KeyValue(key="kv", value=nested),
            anyvalue_pb2.KeyValue(key="unset"),
        ]
    )
    attrs = process(msg, None).state.identifying_attributes
    assert attrs == {
        "s": "text",
        "b": True,
        "i": 2**62,
        "d": 1.5,
        "nan": "nan",
        "inf": "-inf",
        "bytes": "AP8=",
        "arr": [1, None],
        "kv": {"inner": -5, "flag": False},
        "unset": None,
    }
    json.dumps(attrs, allow_nan=False)  # strictly JSON-serialisable


def test_describe_flattens_with_identifying_precedence() -> None:
    msg = full_state(0)
    msg.agent_description.non_identifying_attributes.append(
        kv("service.name", string_value="shadowed")
    )
    flat = describe(process(msg, None).state)
    assert flat["service.name"] == "io.opentelemetry.collector"
    assert flat["service.version"] == "0.140.0"
    assert flat["service.instance.id"] == "7f0a8c52-0000-7000-8000-000000000001"
    assert flat["host.name"] == "gw-1"
    assert flat["os.type"] == "linux"
    assert flat["service.namespace"] is None  # well-known key, not reported
    assert describe(AgentState(instance_uid=U))["service.name"] is None


def test_health_tree_decodes_recursively() -> None:
    msg = heartbeat(0, GO_CAPS)
    msg.health.healthy = False
    msg.health.start_time_unix_nano = 1_700_000_000_000_000_000
    msg.health.status_time_unix_nano = 1_700_000_000_500_000_000
    msg.health.status = "StatusRecoverableError"
    msg.health.last_error = "pipeline failing"
    pipeline = msg.health.component_health_map["pipeline:traces"]
    pipeline.healthy = False
    pipeline.status = "StatusRecoverableError"
    exporter = pipeline.component_health_map["exporter:otlp"]
    exporter.last_error = "connection refused"
    exporter.attributes.append(kv("retry", int_value=3))
    health = process(msg, None).state.health
    assert health == {
        "healthy": False,
        "status": "StatusRecoverableError",
        "last_error": "pipeline failing",
        "start_time_unix_nano": 1_700_000_000_000_000_000,
        "status_time_unix_nano": 1_700_000_000_500_000_000,
        "attributes": {},
        "components": {
            "pipeline:traces": {
                "healthy": False,
                "status": "StatusRecoverableError",
                "last_error": "",
                "start_time_unix_nano": 0,
                "status_time_unix_nano": 0,
                "attributes": {},
                "components": {
                    "exporter:otlp": {
                        "healthy": False,
                        "status": "",
                        "last_error": "connection refused",
                        "start_time_unix_nano": 0,
                        "status_time_unix_nano": 0,
                        "attributes": {"retry": 3},
                        "components": {},
                    }
                },
            }
        },
    }


def test_effective_config_decodes_text_and_replaces_invalid_utf8() -> None:
    msg = heartbeat(0)
    msg.effective_config.config_map.CopyFrom(
        config_map(
            {
                "": (b"exporters:\n  otlp: {}\n", "text/yaml"),
                "raw": (b"\xffbad", ""),
            }
        )
    )
    assert process(msg, None).state.effective_config == {
        "": {"body": "exporters:\n  otlp: {}\n", "content_type": "text/yaml"},
        "raw": {"body": "\ufffdbad", "content_type": ""},
    }


def test_empty_effective_config_map_is_recorded_as_empty() -> None:
    msg = heartbeat(0)
    msg.effective_config.SetInParent()
    outcome = process(msg, None)
    assert outcome.state.effective_config == {}
    assert "effective_config" in outcome.changed


@pytest.mark.parametrize(
    ("status", "name", "error"),
    [
        (opamp_pb2.RemoteConfigStatuses_APPLYING, "APPLYING", ""),
        (opamp_pb2.RemoteConfigStatuses_APPLIED, "APPLIED", ""),
        (opamp_pb2.RemoteConfigStatuses_FAILED, "FAILED", "Config apply timeout exceeded"),
        (opamp_pb2.RemoteConfigStatuses_UNSET, "UNSET", ""),
    ],
)
def test_remote_config_status_is_recorded_with_error_message(
    status: int, name: str, error: str
) -> None:
    msg = heartbeat(0)
    msg.remote_config_status.CopyFrom(rc_status(CONFIG.hash, status, error))
    outcome = process(msg, None)
    assert outcome.state.remote_config_status == {
        "last_remote_config_hash": CONFIG.hash.hex(),
        "status": name,
        "error_message": error,
    }
    assert "remote_config_status" in outcome.changed


def test_unknown_future_enum_value_is_kept_visible() -> None:
    msg = heartbeat(0)
    msg.remote_config_status.last_remote_config_hash = b"\x01"
    msg.remote_config_status.status = 9  # type: ignore[assignment]
    status = process(msg, None).state.remote_config_status
    assert status is not None and status["status"] == "UNKNOWN_9"


def test_package_statuses_custom_capabilities_and_connection_settings_status() -> None:
    msg = heartbeat(0, GO_CAPS)
    pkg = msg.package_statuses.packages["otelcol-contrib"]
    pkg.name = "otelcol-contrib"
    pkg.agent_has_version = "0.139.0"
    pkg.agent_has_hash = b"\x01\x02"
    pkg.server_offered_version = "0.140.0"
    pkg.server_offered_hash = b"\x03"
    pkg.status = opamp_pb2.PackageStatusEnum_Downloading
    pkg.download_details.download_percent = 42.5
    pkg.download_details.download_bytes_per_second = 1024.0
    msg.package_statuses.server_provided_all_packages_hash = b"\xab"
    msg.custom_capabilities.capabilities.extend(["io.flowgate.pipelines/v2", "com.example.x"])
    msg.connection_settings_status.last_connection_settings_hash = OFFER.hash
    msg.connection_settings_status.status = opamp_pb2.ConnectionSettingsStatuses_FAILED
    msg.connection_settings_status.error_message = "cannot connect"
    outcome = process(msg, None)
    state = outcome.state
    assert state.package_statuses == {
        "packages": {
            "otelcol-contrib": {
                "name": "otelcol-contrib",
                "agent_has_version": "0.139.0",
                "agent_has_hash": "0102",
                "server_offered_version": "0.140.0",
                "server_offered_hash": "03",
                "status": "Downloading",
                "error_message": "",
                "download_details": {
                    "download_percent": 42.5,
                    "download_bytes_per_second": 1024.0,
                },
            }
        },
        "server_provided_all_packages_hash": "ab",
        "error_message": "",
    }
    assert state.custom_capabilities == ["io.flowgate.pipelines/v2", "com.example.x"]
    assert state.connection_settings_status == {
        "last_connection_settings_hash": OFFER.hash.hex(),
        "status": "FAILED",
        "error_message": "cannot connect",
    }
    assert {"package_statuses", "custom_capabilities", "connection_settings_status"} <= (
        outcome.changed
    )


def test_capabilities_are_re_evaluated_on_every_message() -> None:
    state, _ = run([full_state(0)])
    outcome = process(heartbeat(1, GO_CAPS & ~REPORTS_HEALTH), state)
    assert outcome.state.capabilities == GO_CAPS & ~REPORTS_HEALTH
    assert outcome.changed == {"sequence", "capabilities"}


# --- Available components -------------------------------------------------------------------


def components_msg(seq: int, hash_: bytes, with_map: bool) -> opamp_pb2.AgentToServer:
    msg = heartbeat(seq, GO_CAPS)
    msg.available_components.hash = hash_
    if with_map:
        receivers = msg.available_components.components["receivers"]
        otlp = receivers.sub_component_map["otlp"]
        otlp.metadata.append(
            kv("code.namespace", string_value="go.opentelemetry.io/collector/receiver/otlpreceiver")
        )
    return msg


COMPONENTS_JSON = {
    "receivers": {
        "metadata": {},
        "components": {
            "otlp": {
                "metadata": {
                    "code.namespace": "go.opentelemetry.io/collector/receiver/otlpreceiver"
                },
                "components": {},
            }
        },
    }
}


def test_hash_only_components_are_requested_then_cached() -> None:
    h = b"\x11" * 32
    first = process(components_msg(0, h, with_map=False), None)
    assert first.reply.flags & REPORT_AVAILABLE_COMPONENTS
    assert first.state.available_components == {"hash": h.hex(), "components": None}

    second = process(components_msg(1, h, with_map=True), first.state)
    assert not second.reply.flags & REPORT_AVAILABLE_COMPONENTS
    assert second.state.available_components == {"hash": h.hex(), "components": COMPONENTS_JSON}
    assert "available_components" in second.changed

    # Next full state carries the hash only again: the cached map is kept, nothing asked.
    third = process(components_msg(2, h, with_map=False), second.state)
    assert not third.reply.flags & REPORT_AVAILABLE_COMPONENTS
    assert third.state.available_components == second.state.available_components
    assert "available_components" not in third.changed

    # A new build: new hash, ask again.
    fourth = process(components_msg(3, b"\x22" * 32, with_map=False), third.state)
    assert fourth.reply.flags & REPORT_AVAILABLE_COMPONENTS
    assert fourth.state.available_components == {"hash": "22" * 32, "components": None}


def test_components_request_does_not_ping_pong_for_an_empty_map() -> None:
    h = b"\x33" * 32
    first = process(components_msg(0, h, with_map=False), None)
    assert first.reply.flags & REPORT_AVAILABLE_COMPONENTS
    # The agent answers the request with the hash and (really) no components.
    second = process(components_msg(1, h, with_map=False), first.state)
    assert not second.reply.flags & REPORT_AVAILABLE_COMPONENTS
    # After a sequence gap it is asked once more.
    third = process(components_msg(5, h, with_map=False), second.state)
    assert third.reply.flags & REPORT_AVAILABLE_COMPONENTS


def test_known_components_cache_avoids_the_request() -> None:
    h = b"\x44" * 32
    outcome = process(
        components_msg(0, h, with_map=False), None, known_components={h.hex(): COMPONENTS_JSON}
    )
    assert not outcome.reply.flags & REPORT_AVAILABLE_COMPONENTS
    assert outcome.state.available_components == {"hash": h.hex(), "components": COMPONENTS_JSON}
    # Shared, not copied: agents of one build hold one map (nested values are read-only).
    assert outcome.state.available_components["components"] is COMPONENTS_JSON


def test_a_map_sent_under_a_known_hash_is_the_known_one() -> None:
    h = b"\x45" * 32
    known = {h.hex(): COMPONENTS_JSON}
    outcome = process(components_msg(0, h, with_map=True), None, known_components=known)
    assert outcome.state.available_components is not None
    assert outcome.state.available_components["components"] is COMPONENTS_JSON
    # An unknown hash's map is decoded from the message, as before.
    other = process(components_msg(0, b"\x46" * 32, with_map=True), None, known_components=known)
    assert other.state.available_components is not None
    assert other.state.available_components["components"] == COMPONENTS_JSON
    assert other.state.available_components["components"] is not COMPONENTS_JSON


# --- Remote config -----------------------------------------------------------------------------


def test_config_hash_is_deterministic_and_unambiguous() -> None:
    a = {"a.yaml": (b"x: 1", "text/yaml"), "b.yaml": (b"y: 2", "text/yaml")}
    b = dict(reversed(list(a.items())))
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 32
    # Independent restatement of the documented format.
    digest = hashlib.sha256()
    for name in ("a.yaml", "b.yaml"):
        body, ct = a[name]
        for part in (name.encode(), body, ct.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
    assert config_hash(a) == digest.digest()
    # Shifting bytes between name/body/content type changes the hash.
    assert config_hash({"ab": (b"c", "")}) != config_hash({"a": (b"bc", "")})
    assert config_hash({"a": (b"b", "c")}) != config_hash({"a": (b"bc", "")})
    assert config_hash({"": (b"x", "text/yaml")}) != config_hash({"": (b"x", "application/json")})
    # An empty config still has a non-empty hash (opamp-go needs one to report status).
    assert config_hash({}) == hashlib.sha256().digest()


def test_remote_config_object_contract() -> None:
    files = {"": (b"a: 1", "text/yaml")}
    rc = RemoteConfig.build(files)
    assert rc.hash == config_hash(files)
    files[""] = (b"changed", "text/yaml")
    assert rc.files[""] == (b"a: 1", "text/yaml")  # copied, not aliased
    with pytest.raises(TypeError):
        rc.files["x"] = (b"", "")  # type: ignore[index]
    assert RemoteConfig(files={"": (b"a: 1", "text/yaml")}, hash=rc.hash) == rc
    assert hash(rc) == hash(RemoteConfig.build({"": (b"a: 1", "text/yaml")}))
    with pytest.raises(ValueError, match="non-empty"):
        RemoteConfig(files={}, hash=b"")
    with pytest.raises(TypeError):
        RemoteConfig.build({"": ("text, not bytes", "text/yaml")})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        RemoteConfig.build({1: (b"", "")})  # type: ignore[dict-item]


def test_remote_config_is_sent_to_capable_agent_without_status() -> None:
    files = {"": (b"receivers: {}\n", "text/yaml"), "extra.json": (b"{}", "application/json")}
    desired = RemoteConfig.build(files)
    outcome = process(
        full_state(0, caps=PY_CAPS & ~REPORTS_REMOTE_CONFIG | REPORTS_REMOTE_CONFIG),
        None,
        desired_config=desired,
    )
    assert outcome.remote_config_sent
    rc = outcome.reply.remote_config
    assert rc.config_hash == desired.hash and len(rc.config_hash) == 32
    assert {name: (f.body, f.content_type) for name, f in rc.config.config_map.items()} == files
    assert outcome.state.remote_config_offered_hash == desired.hash.hex()
    assert "offers" in outcome.changed


def test_remote_config_not_resent_once_agent_reports_its_hash_in_any_status() -> None:
    state, _ = run([full_state(0)], desired_config=CONFIG)
    for status in (
        opamp_pb2.RemoteConfigStatuses_APPLYING,
        opamp_pb2.RemoteConfigStatuses_APPLIED,
        opamp_pb2.RemoteConfigStatuses_FAILED,  # decided on the hash alone, not the status
    ):
        msg = heartbeat(state.sequence_num + 1, GO_CAPS)  # type: ignore[operator]
        msg.remote_config_status.CopyFrom(rc_status(CONFIG.hash, status, "err"))
        outcome = process(msg, state, desired_config=CONFIG)
        assert not outcome.remote_config_sent
        assert not outcome.reply.HasField("remote_config")
        state = outcome.state
    assert state.remote_config_status is not None
    assert state.remote_config_status["status"] == "FAILED"


def test_remote_config_resent_while_reported_hash_differs() -> None:
    old = RemoteConfig.build({"": (b"old", "text/yaml")})
    msg = full_state(0, remote_config_status=rc_status(old.hash))
    state, _ = run([msg])
    outcome = process(heartbeat(1, GO_CAPS), state, desired_config=CONFIG)
    assert outcome.remote_config_sent
    assert outcome.reply.remote_config.config_hash == CONFIG.hash
    # Heartbeat again before the agent reports: the spec's MUST says resend.
    again = process(heartbeat(2, GO_CAPS), outcome.state, desired_config=CONFIG)
    assert again.remote_config_sent


def test_no_remote_config_without_accepts_remote_config() -> None:
    outcome = process(
        full_state(0, caps=GO_CAPS & ~ACCEPTS_REMOTE_CONFIG), None, desired_config=CONFIG
    )
    assert not outcome.remote_config_sent
    assert not outcome.reply.HasField("remote_config")


def test_capability_change_mid_stream_withdraws_and_restores_remote_config() -> None:
    old = RemoteConfig.build({"": (b"old", "text/yaml")})
    state, _ = run([full_state(0, remote_config_status=rc_status(old.hash))])
    withdrawn = process(
        heartbeat(1, GO_CAPS & ~ACCEPTS_REMOTE_CONFIG), state, desired_config=CONFIG
    )
    assert not withdrawn.remote_config_sent
    assert "capabilities" in withdrawn.changed
    restored = process(heartbeat(2, GO_CAPS), withdrawn.state, desired_config=CONFIG)
    assert restored.remote_config_sent


def test_empty_config_map_is_a_valid_offer() -> None:
    empty = RemoteConfig.build({})
    outcome = process(full_state(0), None, desired_config=empty)
    assert outcome.remote_config_sent
    rc = outcome.reply.remote_config
    assert rc.HasField("config")
    assert len(rc.config.config_map) == 0
    assert rc.config_hash == hashlib.sha256().digest()
    # Supervisor runs nothing and reports APPLIED for that hash: done.
    msg = heartbeat(1, GO_CAPS)
    msg.remote_config_status.CopyFrom(rc_status(empty.hash))
    assert not process(msg, outcome.state, desired_config=empty).remote_config_sent


def test_agent_that_never_reports_status_gets_each_config_once() -> None:
    caps = REPORTS_STATUS | ACCEPTS_REMOTE_CONFIG  # accepts, never reports status
    state, outcomes = run(
        [full_state(0, caps=caps), heartbeat(1, caps), heartbeat(2, caps)], desired_config=CONFIG
    )
    assert [o.remote_config_sent for o in outcomes] == [True, False, False]
    newer = RemoteConfig.build({"": (b"newer", "text/yaml")})
    assert process(heartbeat(3, caps), state, desired_config=newer).remote_config_sent
    # After a sequence gap it may have missed the offer: send once more.
    gap = process(heartbeat(9, caps), state, desired_config=CONFIG)
    assert gap.remote_config_sent


def test_no_desired_config_means_no_remote_config() -> None:
    outcome = process(full_state(0), None)
    assert not outcome.remote_config_sent
    assert not outcome.reply.HasField("remote_config")


# --- Connection settings ----------------------------------------------------------------------


def test_connection_settings_offer_validation_and_hash() -> None:
    for bad in (0, -30, True, 2**64):
        with pytest.raises(ValueError, match="heartbeat_interval_seconds"):
            ConnectionSettingsOffer(
                headers={}, heartbeat_interval_seconds=bad, destination_endpoint="ws://h/v1/opamp"
            )
    for endpoint in ("", "flowgate:4320", "ftp://h/x", "wss://"):
        with pytest.raises(ValueError, match="destination_endpoint"):
            ConnectionSettingsOffer(
                headers={}, heartbeat_interval_seconds=30, destination_endpoint=endpoint
            )
    with pytest.raises(ValueError, match="control character"):
        ConnectionSettingsOffer(
            headers={"X": "a\r\nEvil: 1"},
            heartbeat_interval_seconds=30,
            destination_endpoint="https://h/v1/opamp",
        )

    def offer(**changes: Any) -> ConnectionSettingsOffer:
        fields: dict[str, Any] = {
            "headers": {"Authorization": "Bearer a", "X-Org": "1"},
            "heartbeat_interval_seconds": 30,
            "destination_endpoint": "wss://h/v1/opamp",
        }
        fields.update(changes)
        return ConnectionSettingsOffer(**fields)

    base = offer()
    assert len(base.hash) == 32
    assert offer(headers={"X-Org": "1", "Authorization": "Bearer a"}).hash == base.hash
    assert offer(heartbeat_interval_seconds=60).hash != base.hash
    assert offer(destination_endpoint="wss://h2/v1/opamp").hash != base.hash
    assert offer(headers={"Authorization": "Bearer b", "X-Org": "1"}).hash != base.hash
    assert offer(headers={"Authorization": "Bearer a"}).hash != base.hash


def test_connection_settings_sent_only_to_agents_that_accept_them() -> None:
    python = process(full_state(0, caps=PY_CAPS), None, connection_settings=OFFER)
    assert not python.connection_settings_sent
    assert not python.reply.HasField("connection_settings")

    go = process(full_state(0), None, connection_settings=OFFER)
    assert go.connection_settings_sent
    cs = go.reply.connection_settings
    assert cs.hash == OFFER.hash
    assert cs.opamp.heartbeat_interval_seconds == 30
    assert cs.opamp.destination_endpoint == "wss://flowgate.example:4320/v1/opamp"
    assert [(h.key, h.value) for h in cs.opamp.headers.headers] == [
        ("Authorization", "Bearer t0k3n")
    ]
    assert set_fields(cs) == ["hash", "opamp"]


def test_connection_settings_follow_reported_status_hash() -> None:
    state, outcomes = run([full_state(0), heartbeat(1, GO_CAPS)], connection_settings=OFFER)
    assert [o.connection_settings_sent for o in outcomes] == [True, False]  # once, no status

    for status in (
        opamp_pb2.ConnectionSettingsStatuses_APPLYING,
        opamp_pb2.ConnectionSettingsStatuses_APPLIED,
        opamp_pb2.ConnectionSettingsStatuses_FAILED,
    ):
        msg = heartbeat(state.sequence_num + 1, GO_CAPS)  # type: ignore[operator]
        msg.connection_settings_status.last_connection_settings_hash = OFFER.hash
        msg.connection_settings_status.status = status
        outcome = process(msg, state, connection_settings=OFFER)
        assert not outcome.connection_settings_sent
        state = outcome.state

    changed_offer = ConnectionSettingsOffer(
        headers=dict(OFFER.headers),
        heartbeat_interval_seconds=15,
        destination_endpoint=OFFER.destination_endpoint,
    )
    outcome = process(
        heartbeat(state.sequence_num + 1, GO_CAPS), state, connection_settings=changed_offer
    )  # type: ignore[operator]
    assert outcome.connection_settings_sent
    assert outcome.reply.connection_settings.opamp.heartbeat_interval_seconds == 15


# --- Instance uid assignment -------------------------------------------------------------------


def _assert_uuid7(uid: bytes) -> None:
    assert len(uid) == 16
    assert uid[6] >> 4 == 7  # version
    assert uid[8] >> 6 == 0b10  # RFC 9562 variant


def test_request_instance_uid_flag_gets_a_new_uuid7() -> None:
    msg = full_state(0)
    msg.flags = core.REQUEST_INSTANCE_UID
    outcome = process(msg, None)
    new = outcome.reply.agent_identification.new_instance_uid
    _assert_uuid7(new)
    assert new != U
    assert outcome.new_instance_uid == new
    assert "new_instance_uid" in outcome.changed
    assert outcome.reply.instance_uid == U  # the reply still goes to the old uid
    assert outcome.state.instance_uid == U


def test_duplicate_connection_gets_a_new_uid() -> None:
    state, _ = run([full_state(0)])
    outcome = process(heartbeat(1, GO_CAPS), state, duplicate=True)
    _assert_uuid7(outcome.reply.agent_identification.new_instance_uid)
    assert outcome.new_instance_uid is not None


def test_normal_messages_get_no_agent_identification() -> None:
    _, outcomes = run([full_state(0), heartbeat(1, GO_CAPS)])
    for outcome in outcomes:
        assert not outcome.reply.HasField("agent_identification")
        assert outcome.new_instance_uid is None


def test_new_instance_uids_are_unique_and_time_ordered() -> None:
    uids = [new_instance_uid() for _ in range(200)]
    assert len(set(uids)) == 200
    for uid in uids:
        _assert_uuid7(uid)
    assert uids[0][:6] <= uids[-1][:6]  # 48-bit millisecond timestamp prefix


# --- Disconnect -----------------------------------------------------------------------------


def disconnect(seq: int, caps: int = PY_CAPS) -> opamp_pb2.AgentToServer:
    msg = heartbeat(seq, caps)
    msg.agent_disconnect.SetInParent()
    return msg


def test_agent_disconnect_marks_offline_and_a_later_message_revives() -> None:
    state, _ = run([full_state(0, caps=PY_CAPS), heartbeat(1)])
    gone = process(disconnect(2), state, desired_config=CONFIG)
    assert gone.state.disconnected is True
    assert "disconnect" in gone.changed
    # A departing agent gets a bare acknowledgement: no offers, no flags.
    assert set_fields(gone.reply) == ["instance_uid", "capabilities"]
    assert not gone.remote_config_sent

    # Python sends a second disconnect via atexit: tolerated, nothing new.
    again = process(disconnect(3), gone.state)
    assert again.state.disconnected is True
    assert "disconnect" not in again.changed

    back = process(heartbeat(4), again.state)
    assert back.state.disconnected is False
    assert "disconnect" in back.changed


def test_disconnect_from_unknown_agent_is_tolerated() -> None:
    outcome = process(disconnect(0), None)
    assert not outcome.rejected
    assert outcome.state.disconnected is True
    assert outcome.reply.flags == 0


# --- push_message -----------------------------------------------------------------------------


def test_push_message_follows_the_same_rules() -> None:
    state, _ = run([full_state(0)])
    pushed = push_message(state, CONFIG)
    assert pushed is not None
    assert pushed.instance_uid == U
    assert pushed.capabilities == SERVER_CAPABILITIES
    assert pushed.remote_config.config_hash == CONFIG.hash
    assert not pushed.HasField("connection_settings")

    applied = heartbeat(1, GO_CAPS)
    applied.remote_config_status.CopyFrom(rc_status(CONFIG.hash))
    state = process(applied, state).state
    assert push_message(state, CONFIG) is None
    assert push_message(state, None) is None

    newer = RemoteConfig.build({"": (b"v2", "text/yaml")})
    withdrawn = process(heartbeat(2, GO_CAPS & ~ACCEPTS_REMOTE_CONFIG), state).state
    assert push_message(withdrawn, newer) is None
    assert push_message(process(disconnect(2, GO_CAPS), state).state, newer) is None

    with_settings = push_message(state, CONFIG, connection_settings=OFFER)
    assert with_settings is not None
    assert with_settings.connection_settings.hash == OFFER.hash
    assert not with_settings.HasField("remote_config")


# --- State persistence ----------------------------------------------------------------------


def test_state_json_round_trip_is_lossless() -> None:
    msg = full_state(
        0,
        custom_capabilities=opamp_pb2.CustomCapabilities(capabilities=["io.flowgate.x"]),
        remote_config_status=rc_status(CONFIG.hash, opamp_pb2.RemoteConfigStatuses_FAILED, "bad"),
    )
    msg.agent_description.identifying_attributes.append(kv("bin", bytes_value=b"\x00\x01"))
    msg.health.component_health_map["c"].healthy = True
    state, _ = run(
        [msg, components_msg(1, b"\x55" * 32, with_map=True), disconnect(2, GO_CAPS)],
        desired_config=CONFIG,
        connection_settings=OFFER,
    )
    encoded = json.dumps(state.to_json(), allow_nan=False)
    restored = AgentState.from_json(json.loads(encoded))
    assert restored == state
    assert restored.instance_uid == U
    assert restored.disconnected is True
    assert restored.available_components is not None
    assert restored.available_components["components"] == COMPONENTS_JSON


def test_to_json_is_a_deep_copy() -> None:
    state, _ = run([full_state(0)])
    data = state.to_json()
    data["identifying_attributes"]["service.name"] = "mutated"
    data["health"]["healthy"] = False
    assert state.identifying_attributes["service.name"] == "io.opentelemetry.collector"
    assert state.health is not None and state.health["healthy"] is True


def test_a_status_report_is_encoded_once_and_its_snapshot_is_to_json_with_updated_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, _ = run([full_state(0), components_msg(1, b"\x55" * 32, with_map=True)])
    encodes = 0
    real = AgentState.reports_json

    def counted(self: AgentState) -> bytes:
        nonlocal encodes
        encodes += 1
        return real(self)

    monkeypatch.setattr(AgentState, "reports_json", counted)
    msg = heartbeat(2, GO_CAPS)
    msg.remote_config_status.CopyFrom(rc_status(CONFIG.hash))
    outcome = process(msg, state, desired_config=CONFIG)
    assert "remote_config_status" in outcome.changed
    assert encodes == 1 and outcome.reports_json is not None  # the size check's encoding
    updated = {"remote_config_status": "2026-12-02T00:00:00+00:00"}
    snapshot = outcome.state.snapshot_json(updated, outcome.reports_json)
    assert encodes == 1, "the snapshot reuses it"
    stored = json.loads(orjson.dumps(snapshot))  # what the engines' encoder writes
    assert stored == {**outcome.state.to_json(), "updated_at": updated}
    assert AgentState.from_json(stored) == outcome.state
    # Without an encoding at hand the snapshot makes its own, the same.
    assert orjson.dumps(outcome.state.snapshot_json(updated)) == orjson.dumps(snapshot)


def test_from_json_rejects_bad_documents_and_defaults_missing_keys() -> None:
    with pytest.raises(ValueError, match="format"):
        AgentState.from_json({"format": 99, "instance_uid": U.hex()})
    with pytest.raises(ValueError, match="instance_uid"):
        AgentState.from_json({"format": 1})
    with pytest.raises(ValueError, match="instance_uid"):
        AgentState.from_json({"instance_uid": "not hex"})
    assert AgentState.from_json({"instance_uid": U.hex()}) == AgentState(instance_uid=U)


# --- Heartbeat fast path ----------------------------------------------------------------------


def test_heartbeat_on_known_agent_does_no_hashing_decoding_or_serialisation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied = full_state(0, remote_config_status=rc_status(CONFIG.hash))
    applied.connection_settings_status.last_connection_settings_hash = OFFER.hash
    state = process(applied, None, desired_config=CONFIG, connection_settings=OFFER).state

    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("heartbeat did unnecessary work")

    monkeypatch.setattr(core.hashlib, "sha256", forbidden)
    monkeypatch.setattr(core.copy, "deepcopy", forbidden)
    for name in ("_attributes", "_health", "_config_map", "_component_details"):
        monkeypatch.setattr(core, name, forbidden)
    monkeypatch.setattr(AgentState, "to_json", forbidden)
    monkeypatch.setattr(AgentState, "reports_json", forbidden)
    monkeypatch.setattr(RemoteConfig, "to_proto", forbidden)
    monkeypatch.setattr(ConnectionSettingsOffer, "to_proto", forbidden)

    outcome = process(
        heartbeat(1, GO_CAPS), state, desired_config=CONFIG, connection_settings=OFFER
    )
    assert outcome.changed == {"sequence"}
    assert set_fields(outcome.reply) == ["instance_uid", "capabilities"]


# --- Interop with the real Python OpAMP client (in memory, no sockets) -------------------------


def test_python_client_end_to_end_in_memory() -> None:
    client_mod = pytest.importorskip("opentelemetry._opamp.client")
    transport_base = pytest.importorskip("opentelemetry._opamp.transport.base")
    messages = pytest.importorskip("opentelemetry._opamp.messages")
    client_pb2 = pytest.importorskip("opentelemetry._opamp.proto.opamp_pb2")

    store: dict[bytes, AgentState] = {}
    replies: list[opamp_pb2.ServerToAgent] = []
    desired = RemoteConfig.build({"": (b'{"logging_level": "debug"}', "application/json")})

    class InMemoryTransport(transport_base.HttpTransport):  # type: ignore[misc]
        def send(self, *, data: bytes, **_: Any) -> Any:
            msg = core.decode_agent_message(data)
            outcome = process(msg, store.get(msg.instance_uid), desired_config=desired)
            store[msg.instance_uid] = outcome.state
            replies.append(outcome.reply)
            # Decode our bytes with the client's own (independently generated) schema.
            return messages.decode_message(outcome.reply.SerializeToString())

    client = client_mod.OpAMPClient(
        endpoint="http://flowgate.invalid/v1/opamp",
        agent_identifying_attributes={"service.name": "py-svc", "service.version": "1.0"},
        agent_non_identifying_attributes={"host.name": "h1", "pid": 42},
        transport=InMemoryTransport(),
    )

    first = client.send(client.build_full_state_message())
    uid = replies[0].instance_uid
    state = store[uid]
    assert state.sequence_num == 0
    assert state.capabilities == PY_CAPS
    assert state.identifying_attributes == {"service.name": "py-svc", "service.version": "1.0"}
    assert state.non_identifying_attributes == {"host.name": "h1", "pid": 42}
    assert first.capabilities == SERVER_CAPABILITIES
    assert first.remote_config.config_hash == desired.hash
    assert dict(client.decode_remote_config(first.remote_config)) == {
        "": {"logging_level": "debug"}
    }

    status = client.update_remote_config_status(
        remote_config_hash=first.remote_config.config_hash,
        status=client_pb2.RemoteConfigStatuses_APPLIED,
    )
    second = client.send(client.build_remote_config_status_response_message(status))
    assert store[uid].remote_config_status == {
        "last_remote_config_hash": desired.hash.hex(),
        "status": "APPLIED",
        "error_message": "",
    }
    assert not second.HasField("remote_config")

    third = client.send(client.build_heartbeat_message())
    assert third.flags == 0
    assert not third.HasField("remote_config")

    client.send(client.build_agent_disconnect_message())
    client.send(client.build_agent_disconnect_message())  # the atexit duplicate
    assert store[uid].disconnected is True
    assert store[uid].sequence_num == 4


# --- Reports that cannot be stored ----------------------------------------------------------


def nested_array(depth: int, leaf: anyvalue_pb2.AnyValue | None = None) -> anyvalue_pb2.AnyValue:
    """An AnyValue of ``depth`` arrays inside each other, built without recursion."""
    root = anyvalue_pb2.AnyValue()
    node = root
    for _ in range(depth):
        node = node.array_value.values.add()
    if leaf is not None:
        node.CopyFrom(leaf)
    return root


def nested_health(depth: int) -> opamp_pb2.ComponentHealth:
    root = opamp_pb2.ComponentHealth(healthy=True)
    node = root
    for level in range(depth):
        node = node.component_health_map[f"c{level}"]
        node.healthy = True
    return root


def assert_rejected(outcome: Outcome, state: AgentState | None, message: str) -> None:
    assert outcome.rejected
    assert outcome.reply.error_response.type == BAD_REQUEST
    assert outcome.reply.error_response.error_message.startswith(message), (
        outcome.reply.error_response.error_message
    )
    assert set_fields(outcome.reply) == ["instance_uid", "error_response"]
    assert outcome.changed == frozenset()
    if state is not None:
        assert outcome.state is state


def test_attribute_nested_past_32_levels_is_a_bad_request_and_nothing_is_applied() -> None:
    state, _ = run([full_state(0)])
    msg = full_state(1, health=nested_health(1))
    # The attribute map is level 1, so 31 arrays inside it are exactly 32 levels: accepted.
    msg.agent_description.identifying_attributes.add(key="deep", value=nested_array(31))
    ok = process(msg, state)
    assert not ok.rejected
    assert "description" in ok.changed and "health" in ok.changed
    json.dumps(ok.state.to_json(), allow_nan=False)
    too_deep = full_state(2, health=nested_health(2))
    too_deep.agent_description.identifying_attributes.add(key="deep", value=nested_array(32))
    outcome = process(too_deep, ok.state)
    assert_rejected(
        outcome,
        ok.state,
        "agent_description.identifying_attributes: nested deeper than 32 levels at "
        "agent_description.identifying_attributes.deep[0][0]",
    )
    assert outcome.state.health == ok.state.health  # the health in the same message is not applied


def test_nesting_past_the_interpreter_recursion_limit_is_refused_without_recursing() -> None:
    # Built in place, in memory (no parser depth limit applies): the conversion itself must
    # stay bounded.
    msg = heartbeat(0, GO_CAPS)
    node = msg.agent_description.non_identifying_attributes.add(key="x").value
    for _ in range(3000):
        node = node.array_value.values.add()
    assert_rejected(
        process(msg, None), None, "agent_description.non_identifying_attributes: nested deeper"
    )
    msg = heartbeat(0, GO_CAPS)
    health = msg.health
    for level in range(3000):
        health = health.component_health_map[str(level)]
        health.healthy = True
    assert_rejected(process(msg, None), None, "health: nested deeper than 32 levels at health")


def test_component_health_nested_past_32_levels_is_a_bad_request() -> None:
    state, _ = run([full_state(0)])
    # Each component adds two levels (its "components" map and itself): 15 deep is 31 levels.
    assert not process(full_state(1, health=nested_health(15)), state).rejected
    assert_rejected(
        process(full_state(1, health=nested_health(16)), state),
        state,
        "health: nested deeper than 32 levels at health.components.c0.components.c1",
    )


def test_available_components_nested_past_32_levels_is_a_bad_request() -> None:
    msg = full_state(0)
    node = msg.available_components.components["receivers"]
    for level in range(20):
        node = node.sub_component_map[f"r{level}"]
    msg.available_components.hash = b"\xbb" * 32
    assert_rejected(process(msg, None), None, "available_components: nested deeper")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("s", anyvalue_pb2.AnyValue(string_value="a\x00b"), "text must not contain U+0000"),
        ("k", anyvalue_pb2.AnyValue(string_value="x" * (1024 * 1024 + 1)), "text longer than"),
        (
            "m",
            anyvalue_pb2.AnyValue(
                kvlist_value=anyvalue_pb2.KeyValueList(
                    values=[kv(f"k{i}", int_value=i) for i in range(4097)]
                )
            ),
            "more than 4096 keys in one object",
        ),
    ],
)
def test_unstorable_attribute_values_are_a_bad_request(
    field: str, value: anyvalue_pb2.AnyValue, message: str
) -> None:
    msg = full_state(0)
    msg.agent_description.identifying_attributes.add(key=field, value=value)
    outcome = process(msg, None)
    assert_rejected(outcome, None, "agent_description.identifying_attributes: " + message)
    assert outcome.state.identifying_attributes == {}


def test_effective_config_over_one_mib_is_a_bad_request() -> None:
    big = config_map({"a.yaml": (b"a" * 600_000, "text/yaml"), "b.yaml": (b"b" * 600_000, "")})
    msg = full_state(0)
    msg.effective_config.config_map.CopyFrom(big)
    assert_rejected(process(msg, None), None, "effective_config: larger than 1 MiB as JSON")


def test_all_reports_together_are_bounded_too() -> None:
    state, _ = run([full_state(0)])
    filler = "f" * 900_000
    msgs = []
    for seq, field in enumerate(("identifying", "health", "effective", "rcs"), start=1):
        msg = heartbeat(seq, GO_CAPS)
        if field == "identifying":
            msg.agent_description.identifying_attributes.add(
                key="big", value=anyvalue_pb2.AnyValue(string_value=filler)
            )
        elif field == "health":
            msg.health.last_error = filler
        elif field == "effective":
            msg.effective_config.config_map.CopyFrom(
                config_map({"": (filler.encode(), "text/yaml")})
            )
        else:
            msg.remote_config_status.error_message = filler
        msgs.append(msg)
    state, outcomes = run(msgs, state)
    assert not any(o.rejected for o in outcomes)
    last = heartbeat(5, GO_CAPS)
    last.package_statuses.error_message = filler
    assert_rejected(
        process(last, state), state, "agent state: all reports together larger than 4 MiB"
    )
