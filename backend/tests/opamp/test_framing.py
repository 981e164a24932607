"""Byte-level tests: WebSocket framing, protobuf decoding and the interop wire fixtures.

The fixtures are exact bytes captured from the Python OpAMP client
(opentelemetry-opamp-client 0.5b0): a heartbeat and a minimal server reply.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.opamp import core
from flowgate.opamp.core import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MessageTooLargeError,
    ProtocolError,
    decode_agent_message,
    encode_ws_frame,
    parse_ws_frame,
    process,
)
from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

U = bytes.fromhex("019a1b2c3d4e7f00a1b2c3d4e5f60718")
PY_CAPS = 0x3007

# Captured: Python heartbeat {uid=U, seq=3, caps=0x3007}.
HEARTBEAT = b"\x0a\x10" + U + b"\x10\x03" + b"\x20\x87\x60"
# Captured: minimal reply {uid=U, flags=ReportFullState, capabilities=7} as a WebSocket frame.
REPLY_FRAME_CAPS_7 = b"\x00" + b"\x0a\x10" + U + b"\x30\x01" + b"\x38\x07"


def _set_fields(msg: object) -> list[str]:
    return [fd.name for fd, _ in msg.ListFields()]  # type: ignore[attr-defined]


# --- Interop wire fixtures -------------------------------------------------------------


def test_python_heartbeat_fixture_decodes_to_uid_seq_caps_only() -> None:
    msg = decode_agent_message(HEARTBEAT)
    assert msg.instance_uid == U
    assert msg.sequence_num == 3
    assert msg.capabilities == 0x3007 == 12295
    assert _set_fields(msg) == ["instance_uid", "sequence_num", "capabilities"]


def test_heartbeat_fixture_is_exactly_what_our_schema_serialises() -> None:
    built = opamp_pb2.AgentToServer(instance_uid=U, sequence_num=3, capabilities=PY_CAPS)
    assert built.SerializeToString() == HEARTBEAT


def test_websocket_heartbeat_is_header_zero_plus_http_body() -> None:
    assert parse_ws_frame(b"\x00" + HEARTBEAT) == HEARTBEAT
    assert decode_agent_message(parse_ws_frame(b"\x00" + HEARTBEAT)).sequence_num == 3


def test_reply_frame_fixture_decodes_and_reencodes_byte_for_byte() -> None:
    body = parse_ws_frame(REPLY_FRAME_CAPS_7)
    reply = opamp_pb2.ServerToAgent.FromString(body)
    assert reply.instance_uid == U
    assert reply.flags == 1
    assert reply.capabilities == 7
    assert _set_fields(reply) == ["instance_uid", "flags", "capabilities"]
    assert encode_ws_frame(reply) == REPLY_FRAME_CAPS_7


def test_our_reply_to_heartbeat_from_unknown_agent_on_the_wire() -> None:
    # Same layout as the captured reply, but FlowGate advertises its own capabilities (0x27).
    outcome = process(decode_agent_message(HEARTBEAT), None)
    frame = encode_ws_frame(outcome.reply)
    assert frame == b"\x00\x0a\x10" + U + b"\x30\x01" + b"\x38\x27"
    assert frame[1:] == outcome.reply.SerializeToString()  # HTTP body = frame minus header
    decoded = opamp_pb2.ServerToAgent.FromString(parse_ws_frame(frame))
    assert (decoded.instance_uid, decoded.flags, decoded.capabilities) == (U, 1, 0x27)


# --- parse_ws_frame -------------------------------------------------------------------


def test_header_only_frame_is_an_empty_message() -> None:
    assert parse_ws_frame(b"\x00") == b""
    msg = decode_agent_message(b"")
    assert _set_fields(msg) == []
    # ...which the core then rejects for its missing instance_uid.
    assert process(msg, None).reply.error_response.error_message == "instance_uid must be 16 bytes"


def test_non_minimal_zero_varint_header_is_accepted() -> None:
    # The header is a varint whose value must be 0; 0x80 0x00 encodes 0 in two bytes.
    assert parse_ws_frame(b"\x80\x00" + HEARTBEAT) == HEARTBEAT


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "empty WebSocket message: missing OpAMP header"),
        (b"\x01" + HEARTBEAT, "unsupported OpAMP WebSocket header 1; expected 0"),
        # A legacy header-less frame starts with the uid tag 0x0a: rejected, not guessed at.
        (HEARTBEAT, "unsupported OpAMP WebSocket header 10; expected 0"),
        (b"\x81\x00" + HEARTBEAT, "unsupported OpAMP WebSocket header 1; expected 0"),
        (b"\x80", "truncated OpAMP WebSocket header"),
        (b"\xff\xff\xff", "truncated OpAMP WebSocket header"),
        (b"\x80" * 10 + b"\x00", "malformed OpAMP WebSocket header: varint longer than 10 bytes"),
    ],
)
def test_bad_websocket_headers_are_protocol_errors(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        parse_ws_frame(frame)
    assert str(excinfo.value) == message


def test_encode_ws_frame_prefixes_zero_header() -> None:
    reply = opamp_pb2.ServerToAgent(instance_uid=U, capabilities=core.SERVER_CAPABILITIES)
    frame = encode_ws_frame(reply)
    assert frame[0] == 0
    assert opamp_pb2.ServerToAgent.FromString(frame[1:]) == reply


# --- decode_agent_message ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(HEARTBEAT[:-1], id="truncated-varint"),
        pytest.param(HEARTBEAT[:10], id="truncated-length-delimited-uid"),
        pytest.param(b"\x0a\x10" + U[:4], id="uid-shorter-than-its-length"),
        pytest.param(b"\x0b", id="wire-type-3-start-group-without-end"),
        pytest.param(b"\x00", id="field-number-zero"),
        pytest.param(b"\x1a\x03\x0a\x05abc", id="nested-length-overruns-parent"),
    ],
)
def test_malformed_protobuf_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        decode_agent_message(data)
    assert str(excinfo.value) == "malformed AgentToServer message"


def test_invalid_utf8_in_string_field_is_a_protocol_error() -> None:
    # AgentDescription{identifying_attributes: KeyValue{key: b"\xff"}} - proto3 strings
    # must be valid UTF-8.
    kv = b"\x0a\x01\xff"
    desc = b"\x0a" + bytes([len(kv)]) + kv
    data = b"\x0a\x10" + U + b"\x1a" + bytes([len(desc)]) + desc
    with pytest.raises(ProtocolError):
        decode_agent_message(data)


def test_message_size_limit() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    with pytest.raises(MessageTooLargeError) as excinfo:
        decode_agent_message(HEARTBEAT, max_bytes=len(HEARTBEAT) - 1)
    assert isinstance(excinfo.value, ProtocolError)
    assert decode_agent_message(HEARTBEAT, max_bytes=len(HEARTBEAT)).sequence_num == 3
    assert decode_agent_message(HEARTBEAT, max_bytes=None).sequence_num == 3


def _nested_array_value(depth: int) -> bytes:
    value = anyvalue_pb2.AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):
        array = b"\x0a" + _varint(len(value)) + value  # ArrayValue.values = 1
        value = b"\x2a" + _varint(len(array)) + array  # AnyValue.array_value = 5
    return value


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _message_with_attribute_value(value: bytes) -> bytes:
    kv = b"\x0a\x01k" + b"\x12" + _varint(len(value)) + value
    desc = b"\x0a" + _varint(len(kv)) + kv
    return b"\x0a\x10" + U + b"\x1a" + _varint(len(desc)) + desc


def test_hostile_nesting_is_rejected_by_the_parser_not_a_recursion_error() -> None:
    # The core's AnyValue decoder recurses; it relies on protobuf's nesting limit (100).
    with pytest.raises(ProtocolError):
        decode_agent_message(_message_with_attribute_value(_nested_array_value(2000)))


def test_moderate_nesting_decodes_into_nested_lists() -> None:
    msg = decode_agent_message(_message_with_attribute_value(_nested_array_value(20)))
    value = process(msg, None).state.identifying_attributes["k"]
    for _ in range(20):
        assert isinstance(value, list)
        assert len(value) == 1
        value = value[0]
    assert value == "leaf"


# --- Fuzzing ----------------------------------------------------------------------------


def _pipeline(frame: bytes) -> None:
    """Transport-shaped pipeline: must only ever raise ProtocolError."""
    body = parse_ws_frame(frame)
    msg = decode_agent_message(body)
    outcome = process(msg, None)
    encode_ws_frame(outcome.reply)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_agent_message(data)
    with contextlib.suppress(ProtocolError):
        _pipeline(data)


_VALID_FULL_STATE = opamp_pb2.AgentToServer(
    instance_uid=U,
    sequence_num=0,
    capabilities=PY_CAPS,
    agent_description=opamp_pb2.AgentDescription(
        identifying_attributes=[
            anyvalue_pb2.KeyValue(key="service.name", value=anyvalue_pb2.AnyValue(string_value="x"))
        ]
    ),
    effective_config=opamp_pb2.EffectiveConfig(
        config_map=opamp_pb2.AgentConfigMap(
            config_map={"": opamp_pb2.AgentConfigFile(body=b"a: 1", content_type="text/yaml")}
        )
    ),
).SerializeToString()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_VALID_FULL_STATE) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_valid_messages_only_ever_raise_protocol_error(
    mutations: list[tuple[int, int]],
) -> None:
    data = bytearray(_VALID_FULL_STATE)
    for index, byte in mutations:
        data[index] = byte
    with contextlib.suppress(ProtocolError):
        _pipeline(b"\x00" + bytes(data))
