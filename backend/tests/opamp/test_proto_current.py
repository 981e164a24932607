"""The committed protobuf modules are current, portable and match the OpAMP schema.

* Regenerating with ``scripts/gen_proto.py`` must reproduce the committed files exactly.
* The generated modules import without protoc's runtime version guard and with
  package-relative imports, also under protobuf's pure-Python backend.
* Field numbers and enum values match ``opamp.proto`` of the OpAMP specification
  (open-telemetry/opamp-spec) and the schema shipped inside the Python OpAMP client, so
  FlowGate is wire-compatible with real agents.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

BACKEND = Path(__file__).resolve().parents[2]
SCRIPT = BACKEND / "scripts" / "gen_proto.py"
COMMITTED = BACKEND / "src" / "flowgate" / "opamp" / "proto"
GENERATED_NAMES = {
    "__init__.py",
    "anyvalue_pb2.py",
    "anyvalue_pb2.pyi",
    "opamp_pb2.py",
    "opamp_pb2.pyi",
}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("proto")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return _files(out)


def test_committed_generated_files_are_current(regenerated: dict[str, bytes]) -> None:
    assert set(regenerated) == GENERATED_NAMES
    committed = _files(COMMITTED)
    hint = "run `python scripts/gen_proto.py` from backend/ and commit the result"
    assert set(committed) == GENERATED_NAMES, f"unexpected files in {COMMITTED}; {hint}"
    stale = sorted(name for name in GENERATED_NAMES if committed[name] != regenerated[name])
    assert not stale, f"stale generated files {stale}; {hint}"


def test_generation_is_deterministic(regenerated: dict[str, bytes], tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], check=True)
    assert _files(tmp_path) == regenerated


def test_generated_modules_are_post_processed(regenerated: dict[str, bytes]) -> None:
    module = regenerated["opamp_pb2.py"].decode()
    assert "_runtime_version" not in module  # would pin the protobuf major version
    assert "from . import anyvalue_pb2 as opamp_dot_v1_dot_anyvalue__pb2" in module
    assert "'flowgate.opamp.proto.opamp_pb2'" in module
    assert "from opamp.v1" not in module
    assert "from . import anyvalue_pb2 as _anyvalue_pb2" in regenerated["opamp_pb2.pyi"].decode()
    assert opamp_pb2.AgentToServer.__module__ == "flowgate.opamp.proto.opamp_pb2"
    assert opamp_pb2.DESCRIPTOR.package == "opamp.proto.v1"
    assert anyvalue_pb2.DESCRIPTOR.package == "opamp.proto.v1"


def test_modules_work_with_the_pure_python_protobuf_backend() -> None:
    code = (
        "from google.protobuf.internal import api_implementation as a\n"
        "assert a.Type() == 'python', a.Type()\n"
        "from flowgate.opamp.proto import opamp_pb2\n"
        "m = opamp_pb2.AgentToServer.FromString(bytes.fromhex("
        "'0a10' + '11' * 16 + '1003208760'))\n"
        "assert (m.sequence_num, m.capabilities) == (3, 0x3007)\n"
    )
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# --- Schema facts from the spec ------------------------------------------------------------

FIELD_NUMBERS: dict[str, dict[str, int]] = {
    "AgentToServer": {
        "instance_uid": 1,
        "sequence_num": 2,
        "agent_description": 3,
        "capabilities": 4,
        "health": 5,
        "effective_config": 6,
        "remote_config_status": 7,
        "package_statuses": 8,
        "agent_disconnect": 9,
        "flags": 10,
        "connection_settings_request": 11,
        "custom_capabilities": 12,
        "custom_message": 13,
        "available_components": 14,
        "connection_settings_status": 15,
    },
    "ServerToAgent": {
        "instance_uid": 1,
        "error_response": 2,
        "remote_config": 3,
        "connection_settings": 4,
        "packages_available": 5,
        "flags": 6,
        "capabilities": 7,
        "agent_identification": 8,
        "command": 9,
        "custom_capabilities": 10,
        "custom_message": 11,
    },
    "AgentDescription": {"identifying_attributes": 1, "non_identifying_attributes": 2},
    "ComponentHealth": {
        "healthy": 1,
        "start_time_unix_nano": 2,
        "last_error": 3,
        "status": 4,
        "status_time_unix_nano": 5,
        "component_health_map": 6,
        "attributes": 7,
    },
    "EffectiveConfig": {"config_map": 1},
    "AgentConfigMap": {"config_map": 1},
    "AgentConfigFile": {"body": 1, "content_type": 2, "role": 3},
    "RemoteConfigStatus": {"last_remote_config_hash": 1, "status": 2, "error_message": 3},
    "AgentRemoteConfig": {"config": 1, "config_hash": 2},
    "ConnectionSettingsOffers": {
        "hash": 1,
        "opamp": 2,
        "own_metrics": 3,
        "own_traces": 4,
        "own_logs": 5,
        "other_connections": 6,
    },
    "OpAMPConnectionSettings": {
        "destination_endpoint": 1,
        "headers": 2,
        "certificate": 3,
        "heartbeat_interval_seconds": 4,
        "tls": 5,
        "proxy": 6,
    },
    "TelemetryConnectionSettings": {
        "destination_endpoint": 1,
        "headers": 2,
        "certificate": 3,
        "tls": 4,
        "proxy": 5,
    },
    "OtherConnectionSettings": {
        "destination_endpoint": 1,
        "headers": 2,
        "certificate": 3,
        "other_settings": 4,
        "tls": 5,
        "proxy": 6,
    },
    "Headers": {"headers": 1},
    "Header": {"key": 1, "value": 2},
    "TLSCertificate": {"cert": 1, "private_key": 2, "ca_cert": 3},
    "TLSConnectionSettings": {
        "ca_pem_contents": 1,
        "include_system_ca_certs_pool": 2,
        "insecure_skip_verify": 3,
        "min_version": 4,
        "max_version": 5,
        "cipher_suites": 6,
    },
    "ProxyConnectionSettings": {"url": 1, "connect_headers": 2},
    "ConnectionSettingsRequest": {"opamp": 1},
    "OpAMPConnectionSettingsRequest": {"certificate_request": 1},
    "CertificateRequest": {"csr": 1},
    "ConnectionSettingsStatus": {
        "last_connection_settings_hash": 1,
        "status": 2,
        "error_message": 3,
    },
    "PackagesAvailable": {"packages": 1, "all_packages_hash": 2},
    "PackageAvailable": {"type": 1, "version": 2, "file": 3, "hash": 4},
    "DownloadableFile": {"download_url": 1, "content_hash": 2, "signature": 3, "headers": 4},
    "PackageStatuses": {"packages": 1, "server_provided_all_packages_hash": 2, "error_message": 3},
    "PackageStatus": {
        "name": 1,
        "agent_has_version": 2,
        "agent_has_hash": 3,
        "server_offered_version": 4,
        "server_offered_hash": 5,
        "status": 6,
        "error_message": 7,
        "download_details": 8,
    },
    "PackageDownloadDetails": {"download_percent": 1, "download_bytes_per_second": 2},
    "CustomCapabilities": {"capabilities": 1},
    "CustomMessage": {"capability": 1, "type": 2, "data": 3},
    "AvailableComponents": {"components": 1, "hash": 2},
    "ComponentDetails": {"metadata": 1, "sub_component_map": 2},
    "ServerErrorResponse": {"type": 1, "error_message": 2, "retry_info": 3},
    "RetryInfo": {"retry_after_nanoseconds": 1},
    "ServerToAgentCommand": {"type": 1},
    "AgentIdentification": {"new_instance_uid": 1},
    "AgentDisconnect": {},
}

ANYVALUE_FIELD_NUMBERS: dict[str, dict[str, int]] = {
    "AnyValue": {
        "string_value": 1,
        "bool_value": 2,
        "int_value": 3,
        "double_value": 4,
        "array_value": 5,
        "kvlist_value": 6,
        "bytes_value": 7,
    },
    "ArrayValue": {"values": 1},
    "KeyValueList": {"values": 1},
    "KeyValue": {"key": 1, "value": 2},
}

ENUM_VALUES: dict[str, dict[str, int]] = {
    "AgentCapabilities": {
        "Unspecified": 0,
        "ReportsStatus": 0x1,
        "AcceptsRemoteConfig": 0x2,
        "ReportsEffectiveConfig": 0x4,
        "AcceptsPackages": 0x8,
        "ReportsPackageStatuses": 0x10,
        "ReportsOwnTraces": 0x20,
        "ReportsOwnMetrics": 0x40,
        "ReportsOwnLogs": 0x80,
        "AcceptsOpAMPConnectionSettings": 0x100,
        "AcceptsOtherConnectionSettings": 0x200,
        "AcceptsRestartCommand": 0x400,
        "ReportsHealth": 0x800,
        "ReportsRemoteConfig": 0x1000,
        "ReportsHeartbeat": 0x2000,
        "ReportsAvailableComponents": 0x4000,
        "ReportsConnectionSettingsStatus": 0x8000,
    },
    "ServerCapabilities": {
        "Unspecified": 0,
        "AcceptsStatus": 0x1,
        "OffersRemoteConfig": 0x2,
        "AcceptsEffectiveConfig": 0x4,
        "OffersPackages": 0x8,
        "AcceptsPackagesStatus": 0x10,
        "OffersConnectionSettings": 0x20,
        "AcceptsConnectionSettingsRequest": 0x40,
    },
    "AgentToServerFlags": {"Unspecified": 0, "RequestInstanceUid": 1},
    "ServerToAgentFlags": {"Unspecified": 0, "ReportFullState": 1, "ReportAvailableComponents": 2},
    "RemoteConfigStatuses": {"UNSET": 0, "APPLIED": 1, "APPLYING": 2, "FAILED": 3},
    "ConnectionSettingsStatuses": {"UNSET": 0, "APPLIED": 1, "APPLYING": 2, "FAILED": 3},
    "ServerErrorResponseType": {"Unknown": 0, "BadRequest": 1, "Unavailable": 2},
    "PackageStatusEnum": {
        "Installed": 0,
        "InstallPending": 1,
        "Installing": 2,
        "InstallFailed": 3,
        "Downloading": 4,
    },
    "PackageType": {"TopLevel": 0, "Addon": 1},
    "CommandType": {"Restart": 0},
}


def _field_numbers(descriptor: Any) -> dict[str, int]:
    return {f.name: f.number for f in descriptor.fields}


@pytest.mark.parametrize("message", sorted(FIELD_NUMBERS))
def test_opamp_message_fields_match_the_spec(message: str) -> None:
    descriptor = opamp_pb2.DESCRIPTOR.message_types_by_name[message]
    assert _field_numbers(descriptor) == FIELD_NUMBERS[message]


def test_every_opamp_message_is_covered_by_the_table() -> None:
    assert set(opamp_pb2.DESCRIPTOR.message_types_by_name) == set(FIELD_NUMBERS)


@pytest.mark.parametrize("message", sorted(ANYVALUE_FIELD_NUMBERS))
def test_anyvalue_message_fields_match_the_spec(message: str) -> None:
    descriptor = anyvalue_pb2.DESCRIPTOR.message_types_by_name[message]
    assert _field_numbers(descriptor) == ANYVALUE_FIELD_NUMBERS[message]


@pytest.mark.parametrize("enum", sorted(ENUM_VALUES))
def test_enum_values_match_the_spec(enum: str) -> None:
    descriptor = opamp_pb2.DESCRIPTOR.enum_types_by_name[enum]
    assert {v.name: v.number for v in descriptor.values} == {
        f"{enum}_{name}": number for name, number in ENUM_VALUES[enum].items()
    }


def test_every_opamp_enum_is_covered_by_the_table() -> None:
    assert set(opamp_pb2.DESCRIPTOR.enum_types_by_name) == set(ENUM_VALUES)


def test_scalar_types_that_matter_on_the_wire() -> None:
    fd = opamp_pb2.ComponentHealth.DESCRIPTOR.fields_by_name
    assert fd["start_time_unix_nano"].type == fd["start_time_unix_nano"].TYPE_FIXED64
    assert fd["status_time_unix_nano"].type == fd["status_time_unix_nano"].TYPE_FIXED64
    a2s = opamp_pb2.AgentToServer.DESCRIPTOR.fields_by_name
    for name in ("sequence_num", "capabilities", "flags"):
        assert a2s[name].type == a2s[name].TYPE_UINT64
    av = anyvalue_pb2.AnyValue.DESCRIPTOR
    assert [f.name for f in av.oneofs_by_name["value"].fields] == list(
        ANYVALUE_FIELD_NUMBERS["AnyValue"]
    )
    assert av.fields_by_name["int_value"].type == av.fields_by_name["int_value"].TYPE_INT64
    err = opamp_pb2.ServerErrorResponse.DESCRIPTOR
    assert [f.name for f in err.oneofs_by_name["Details"].fields] == ["retry_info"]


def _is_repeated(field: Any) -> bool:
    # protobuf 7 has `is_repeated`; 5.x only has `label` (3 == LABEL_REPEATED).
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == 3)


def _same_shape(ours: Any, theirs: Any, path: str) -> None:
    for their_field in theirs.fields:
        our_field = ours.fields_by_name.get(their_field.name)
        where = f"{path}.{their_field.name}"
        assert our_field is not None, f"{where} missing"
        assert our_field.number == their_field.number, where
        assert our_field.type == their_field.type, where
        assert _is_repeated(our_field) == _is_repeated(their_field), where
        if their_field.message_type is not None:
            assert our_field.message_type.name == their_field.message_type.name, where
        if their_field.enum_type is not None:
            assert our_field.enum_type.name == their_field.enum_type.name, where


def test_schema_is_a_wire_compatible_superset_of_the_python_clients() -> None:
    # The client ships its own independently generated (older) copy of the spec schema.
    client_pb2 = pytest.importorskip("opentelemetry._opamp.proto.opamp_pb2")
    client_any = pytest.importorskip("opentelemetry._opamp.proto.anyvalue_pb2")
    pairs = [(opamp_pb2, client_pb2), (anyvalue_pb2, client_any)]
    checked = 0
    for ours, theirs in pairs:
        for name, their_msg in theirs.DESCRIPTOR.message_types_by_name.items():
            _same_shape(ours.DESCRIPTOR.message_types_by_name[name], their_msg, name)
            checked += 1
        for name, their_enum in theirs.DESCRIPTOR.enum_types_by_name.items():
            our_enum = ours.DESCRIPTOR.enum_types_by_name[name]
            assert {v.name: v.number for v in their_enum.values}.items() <= {
                v.name: v.number for v in our_enum.values
            }.items(), name
    assert checked >= 35  # guards against silently comparing nothing
