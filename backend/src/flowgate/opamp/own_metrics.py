"""The Collectors' own metrics: decode OTLP, keep recent points, derive the gateway's numbers.

An agent that advertises ``ReportsOwnMetrics`` is offered FlowGate's OTLP/HTTP endpoint in
``ConnectionSettingsOffers.own_metrics`` (see :func:`own_metrics_endpoint` and
:mod:`flowgate.opamp.own_metrics_router`). What the Collector sends there
(``otelcol_receiver_accepted_*``, ``otelcol_receiver_refused_*``, ``otelcol_exporter_sent_*``,
``otelcol_exporter_send_failed_*``, ``otelcol_process_*``) is reduced here to a few numbers:

* ``logs_processed``: log records accepted by the receivers (cumulative, all receivers);
* ``errors``: items refused by receivers plus items exporters failed to send (cumulative);
* ``accepted_per_second`` / ``refused_per_second`` / ``sent_per_second`` /
  ``send_failed_per_second``: rates over all signals, from the first and last point kept of
  each cumulative series (a counter reset starts the series again);
* ``cpu_percent`` (rate of ``otelcol_process_cpu_seconds`` * 100), ``memory_rss_bytes``,
  ``heap_alloc_bytes``, ``uptime_seconds``.

``latency_ms`` stays empty: the Collector's own metrics have no pipeline latency.

Memory is bounded: only the metric families above are kept, at most :data:`MAX_POINTS` points
per series, :data:`MAX_SERIES` series per gateway and :data:`MAX_GATEWAYS` gateways (least
recently reporting forgotten first). Rates need two exports on the same replica; the derived
numbers reach the gateway's row through the batched presence writes, so every replica shows
them.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint

from flowgate.core.settings import Settings

#: Served paths; the first is offered to agents that connected on ``/api/...`` (deployments
#: that route only ``/api`` to FlowGate), the second to the others.
API_PATH: Final = "/api/v1/otlp/v1/metrics"
PATH: Final = "/v1/otlp/v1/metrics"
PATHS: Final = (PATH, API_PATH)

MAX_BODY_BYTES: Final = 4 * 1024 * 1024
"""Largest export accepted (after decompression); beyond it 413."""
MAX_POINTS: Final = 8
MAX_SERIES: Final = 256
MAX_GATEWAYS: Final = 100_000

_CUMULATIVE: Final = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_SIGNALS: Final = ("log_records", "spans", "metric_points")
#: Counter families kept (sums over every series of the family).
_COUNTERS: Final = frozenset(
    [f"otelcol_receiver_accepted_{s}" for s in _SIGNALS]
    + [f"otelcol_receiver_refused_{s}" for s in _SIGNALS]
    + [f"otelcol_exporter_sent_{s}" for s in _SIGNALS]
    + [f"otelcol_exporter_send_failed_{s}" for s in _SIGNALS]
    + ["otelcol_process_cpu_seconds"]
)
#: Gauge families kept (latest value, summed over series).
_GAUGES: Final = frozenset(
    {
        "otelcol_process_memory_rss",
        "otelcol_process_runtime_heap_alloc_bytes",
        "otelcol_process_runtime_total_sys_memory_bytes",
        "otelcol_process_uptime",
    }
)


class BadExport(ValueError):
    """The body is not an ``ExportMetricsServiceRequest`` (answered 400 with the message)."""


class TooLarge(ValueError):
    """The body is over :data:`MAX_BODY_BYTES` (answered 413)."""


def own_metrics_endpoint(settings: Settings, opamp_endpoint: str) -> str:
    """The URL offered in ``own_metrics``: FlowGate's public URL and the OTLP path that
    matches the OpAMP path the agent connected on."""
    path = API_PATH if urlsplit(opamp_endpoint).path.startswith("/api/") else PATH
    return settings.resolved_public_url + path


def _name(raw: str) -> str:
    # OTLP carries the SDK's names (``otelcol_receiver_accepted_log_records``, older builds
    # ``otelcol.receiver.accepted.log_records``); Prometheus adds ``_total``.
    name = raw.replace(".", "_")
    return name.removesuffix("_total")


def gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise BadExport(f"invalid gzip body: {exc}") from None
    if len(data) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise TooLarge("export exceeds the size limit after decompression")
    return data


def decode(body: bytes, media_type: str) -> ExportMetricsServiceRequest:
    """Decode an OTLP/HTTP metrics export (protobuf, or OTLP JSON)."""
    request = ExportMetricsServiceRequest()
    if media_type == "application/json":
        try:
            json_format.Parse(body, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, RecursionError) as exc:
            raise BadExport(f"invalid OTLP JSON: {str(exc)[:200]}") from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError):
        raise BadExport("body is not an OTLP ExportMetricsServiceRequest (protobuf)") from None
    return request


@dataclass(frozen=True)
class Sample:
    family: str
    series: tuple[Any, ...]
    time_unix_nano: int
    start_time_unix_nano: int
    value: float
    cumulative: bool


def _value(point: NumberDataPoint) -> float | None:
    kind = point.WhichOneof("value")
    if kind == "as_int":
        return float(point.as_int)
    if kind == "as_double" and math.isfinite(point.as_double):
        return point.as_double
    return None


def _attrs(attributes: Iterable[KeyValue]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        scalar = kind in ("string_value", "int_value", "bool_value", "double_value")
        out.append((kv.key, str(getattr(kv.value, kind)) if kind and scalar else ""))
    return tuple(sorted(out))


def samples(request: ExportMetricsServiceRequest) -> list[Sample]:
    """The data points of the families FlowGate derives numbers from; the rest is ignored."""
    found: list[Sample] = []
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                family = _name(metric.name)
                data = metric.WhichOneof("data")
                if family in _COUNTERS and data == "sum":
                    points = metric.sum.data_points
                    cumulative = metric.sum.aggregation_temporality == _CUMULATIVE
                elif family in _GAUGES and data in ("gauge", "sum"):
                    points = metric.gauge.data_points if data == "gauge" else metric.sum.data_points
                    cumulative = False
                else:
                    continue
                for point in points:
                    value = _value(point)
                    if value is None or point.time_unix_nano == 0:
                        continue
                    found.append(
                        Sample(
                            family,
                            (family, _attrs(point.attributes)),
                            point.time_unix_nano,
                            point.start_time_unix_nano,
                            value,
                            cumulative,
                        )
                    )
    return found


@dataclass
class _Series:
    cumulative: bool
    points: deque[tuple[int, int, float]] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))

    def add(self, sample: Sample) -> None:
        if self.points:
            last_t, last_start, last_v = self.points[-1]
            if sample.time_unix_nano <= last_t:
                return  # a re-sent or out-of-order point
            reset = sample.start_time_unix_nano != last_start or sample.value < last_v
            if self.cumulative and reset:
                self.points.clear()  # the process restarted: rates start again
        self.points.append((sample.time_unix_nano, sample.start_time_unix_nano, sample.value))

    @property
    def latest(self) -> float:
        return self.points[-1][2]

    def rate(self) -> tuple[float, float] | None:
        """(per-second rate, window seconds) between the first and last point kept."""
        if not self.cumulative or len(self.points) < 2:
            return None
        t0, _, v0 = self.points[0]
        t1, _, v1 = self.points[-1]
        seconds = (t1 - t0) / 1e9
        return ((v1 - v0) / seconds, seconds) if seconds > 0 else None


@dataclass
class _Gateway:
    series: dict[tuple[Any, ...], _Series] = field(default_factory=dict)
    dropped_series: int = 0


class OwnMetrics:
    """Recent points per gateway on this replica (bounded, see the module docstring)."""

    def __init__(self, max_gateways: int = MAX_GATEWAYS) -> None:
        self._gateways: OrderedDict[Any, _Gateway] = OrderedDict()
        self._max_gateways = max_gateways

    def __len__(self) -> int:
        return len(self._gateways)

    def ingest(self, gateway_id: Any, found: list[Sample]) -> dict[str, Any]:
        """Add the samples of one export and return the gateway's derived numbers."""
        gateway = self._gateways.pop(gateway_id, None) or _Gateway()
        self._gateways[gateway_id] = gateway  # most recent last
        while len(self._gateways) > self._max_gateways:
            self._gateways.popitem(last=False)
        for sample in sorted(found, key=lambda s: s.time_unix_nano):
            series = gateway.series.get(sample.series)
            if series is None:
                if len(gateway.series) >= MAX_SERIES:
                    gateway.dropped_series += 1
                    continue
                series = gateway.series[sample.series] = _Series(sample.cumulative)
            series.add(sample)
        return derive(gateway.series.values(), gateway.series.keys())

    def forget(self, gateway_id: Any) -> None:
        self._gateways.pop(gateway_id, None)


def derive(series: Any, keys: Any) -> dict[str, Any]:
    latest: dict[str, float] = {}
    rates: dict[str, float] = {}
    window = 0.0
    for key, s in zip(keys, series, strict=True):
        family = key[0]
        latest[family] = latest.get(family, 0.0) + s.latest
        rate = s.rate()
        if rate is not None:
            rates[family] = rates.get(family, 0.0) + rate[0]
            window = max(window, rate[1])

    def total(prefix: str) -> float | None:
        names = [f"{prefix}_{s}" for s in _SIGNALS if f"{prefix}_{s}" in latest]
        return sum(latest[n] for n in names) if names else None

    def count(value: float | None) -> int | None:
        return round(value) if value is not None else None

    def per_second(prefix: str) -> float | None:
        names = [f"{prefix}_{s}" for s in _SIGNALS if f"{prefix}_{s}" in rates]
        return round(sum(rates[n] for n in names), 3) if names else None

    refused = total("otelcol_receiver_refused")
    failed = total("otelcol_exporter_send_failed")
    logs = latest.get("otelcol_receiver_accepted_log_records")
    cpu = rates.get("otelcol_process_cpu_seconds")
    rss = latest.get("otelcol_process_memory_rss")
    heap = latest.get("otelcol_process_runtime_heap_alloc_bytes")
    uptime = latest.get("otelcol_process_uptime")
    errors = None if refused is None and failed is None else (refused or 0) + (failed or 0)
    return {
        "logs_processed": count(logs),
        "errors": count(errors),
        "latency_ms": None,
        "accepted": count(total("otelcol_receiver_accepted")),
        "refused": count(refused),
        "sent": count(total("otelcol_exporter_sent")),
        "send_failed": count(failed),
        "accepted_per_second": per_second("otelcol_receiver_accepted"),
        "refused_per_second": per_second("otelcol_receiver_refused"),
        "sent_per_second": per_second("otelcol_exporter_sent"),
        "send_failed_per_second": per_second("otelcol_exporter_send_failed"),
        "cpu_percent": round(cpu * 100, 2) if cpu is not None else None,
        "memory_rss_bytes": int(rss) if rss is not None else None,
        "heap_alloc_bytes": int(heap) if heap is not None else None,
        "uptime_seconds": round(uptime, 1) if uptime is not None else None,
        "window_seconds": round(window, 3) if rates else None,
    }
