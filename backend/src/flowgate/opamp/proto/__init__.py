"""Generated OpAMP protobuf modules (``opamp.proto.v1``).

Produced by ``backend/scripts/gen_proto.py`` from ``backend/proto/opamp/v1/*.proto``.
Do not edit: change the .proto files and rerun the script.
"""
