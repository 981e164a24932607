"""FlowGate: control plane for OpenTelemetry Collector gateways."""

__version__ = "0.1.0"
