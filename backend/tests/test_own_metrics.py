"""The Collectors' own telemetry against a live server, on both databases: an agent with
``ReportsOwnMetrics`` gets an ``own_metrics`` offer over a real WebSocket, sends real OTLP
protobuf (built with ``opentelemetry-proto``) to the offered endpoint with the offered
headers, and the gateway's status shows the numbers derived from it."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from prometheus_client.parser import text_string_to_metric_families

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org
from tests.support.polling import wait_for
from tests.support.ws_agent import (
    ACCEPTS_OPAMP_CONNECTION_SETTINGS,
    DEFAULT_CAPS,
    REPORTS_OWN_METRICS,
    WsAgent,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
START = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def _attrs(**values: str) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in values.items()]


def _counter(name: str, points: list[tuple[dict[str, str], float]], at: int) -> Metric:
    return Metric(
        name=name,
        sum=Sum(
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
            data_points=[
                NumberDataPoint(
                    attributes=_attrs(**attrs),
                    start_time_unix_nano=START,
                    time_unix_nano=at,
                    as_double=value,
                )
                for attrs, value in points
            ],
        ),
    )


def collector_export(at_seconds: int, scale: float) -> ExportMetricsServiceRequest:
    """What a Collector's internal telemetry exports: cumulative counters at one instant."""
    at = START + at_seconds * SECOND
    otlp = {"receiver": "otlp", "transport": "grpc"}
    files = {"receiver": "filelog"}
    metrics = [
        # two receivers: the numbers are summed over series
        _counter(
            "otelcol_receiver_accepted_log_records", [(otlp, 600 * scale), (files, 400 * scale)], at
        ),
        _counter("otelcol_receiver_accepted_spans", [(otlp, 200 * scale)], at),
        _counter("otelcol_receiver_refused_log_records", [(otlp, 3 * scale)], at),
        _counter("otelcol_exporter_sent_log_records", [({"exporter": "otlp"}, 990 * scale)], at),
        _counter(
            "otelcol_exporter_send_failed_log_records", [({"exporter": "otlp"}, 7 * scale)], at
        ),
        _counter("otelcol_process_cpu_seconds", [({}, 2.0 * scale)], at),
        Metric(
            name="otelcol_process_memory_rss",
            gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=at, as_int=150_000_000)]),
        ),
        Metric(  # not a family FlowGate keeps: ignored
            name="otelcol_processor_batch_batch_send_size",
            gauge=Gauge(data_points=[NumberDataPoint(time_unix_nano=at, as_int=5)]),
        ),
    ]
    resource = ResourceMetrics(
        scope_metrics=[ScopeMetrics(metrics=metrics)],
    )
    resource.resource.attributes.extend(_attrs(**{"service.name": "otelcol-contrib"}))
    return ExportMetricsServiceRequest(resource_metrics=[resource])


async def _offer(org: Org, token: str, caps: int) -> opamp_pb2.ServerToAgent:
    async with WsAgent(org.server.ws_url + "/v1/opamp", token, capabilities=caps) as agent:
        return await agent.request(agent.full_state())


def _status(org: Org, gateway_id: str) -> dict[str, Any]:
    resp = org.get(f"/api/v1/gateways/{gateway_id}/status")
    assert resp.status_code == 200, resp.text
    status: dict[str, Any] = resp.json()
    return status


async def test_own_metrics_offer_ingest_and_status(org: Org) -> None:
    gw = org.register(name="own-metrics")
    reply = await _offer(org, gw["opamp_token"], DEFAULT_CAPS | REPORTS_OWN_METRICS)
    assert reply.HasField("connection_settings"), reply
    offer = reply.connection_settings
    assert offer.hash
    assert not offer.HasField("opamp")  # no AcceptsOpAMPConnectionSettings
    own = offer.own_metrics
    assert own.destination_endpoint == org.server.url + "/v1/otlp/v1/metrics"
    headers = {h.key: h.value for h in own.headers.headers}
    assert headers == {"Authorization": f"Bearer {gw['opamp_token']}"}

    with httpx.Client(headers=headers) as http:
        first = http.post(
            own.destination_endpoint,
            content=collector_export(0, 1.0).SerializeToString(),
            headers=PROTOBUF,
        )
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "application/x-protobuf"
        ExportMetricsServiceResponse.FromString(first.content)
        # ten seconds later, everything grew by half; sent gzipped like otlphttp does
        second = http.post(
            own.destination_endpoint,
            content=gzip.compress(collector_export(10, 1.5).SerializeToString()),
            headers={**PROTOBUF, "Content-Encoding": "gzip"},
        )
        assert second.status_code == 200, second.text

    status = wait_for(
        lambda: (
            (st := _status(org, gw["id"]))["own_telemetry"] is not None
            and st["own_telemetry"]["accepted_per_second"] is not None
            and st
        )
    )
    metrics, derived = status["metrics"], status["own_telemetry"]
    # the seed's shape, filled from the Collector's own metrics
    assert set(metrics) == {"logs_processed", "errors", "latency_ms", "last_updated"}
    assert metrics["logs_processed"] == 1500
    assert metrics["errors"] == 3 * 1.5 + 7 * 1.5 == 15
    assert metrics["latency_ms"] is None
    assert metrics["last_updated"] == derived["last_updated"]
    assert derived["in_metrics"] is True
    assert derived["accepted"] == (1000 + 200) * 1.5
    assert derived["accepted_per_second"] == 600 / 10  # (1800 - 1200) / 10 s
    assert derived["refused_per_second"] == 0.15
    assert derived["sent_per_second"] == 49.5
    assert derived["send_failed_per_second"] == 0.35
    assert derived["cpu_percent"] == 10.0  # (3 - 2) cpu seconds over 10 s
    assert derived["memory_rss_bytes"] == 150_000_000
    assert derived["window_seconds"] == 10
    assert org.get(f"/api/v1/gateways/{gw['id']}/metrics").json() == metrics

    # The REST heartbeat's metrics keep working: the newer source wins.
    hb = org.heartbeat(gw, {"metrics": {"logs_processed": 7, "errors": 1, "latency_ms": 2.5}})
    assert hb.status_code == 200, hb.text
    status = wait_for(
        lambda: (st := _status(org, gw["id"]))["own_telemetry"]["in_metrics"] is False and st
    )
    metrics = status["metrics"]
    assert (metrics["logs_processed"], metrics["errors"], metrics["latency_ms"]) == (7, 1, 2.5)
    assert status["own_telemetry"]["accepted_per_second"] == 60.0


async def test_agent_without_the_capability_gets_no_own_metrics_offer(org: Org) -> None:
    gw = org.register()
    reply = await _offer(org, gw["opamp_token"], DEFAULT_CAPS)
    assert not reply.HasField("error_response")
    assert not reply.HasField("connection_settings")


def test_ingestion_refuses_bad_credentials_garbage_and_oversize(org: Org) -> None:
    gw = org.register()
    url = org.server.url + "/api/v1/otlp/v1/metrics"
    body = collector_export(0, 1.0).SerializeToString()
    for auth in (None, "Bearer garbage", "Bearer a.b.c", f"Bearer {org.registration_token()}"):
        headers = {**PROTOBUF, **({"Authorization": auth} if auth else {})}
        resp = httpx.post(url, content=body, headers=headers)
        assert resp.status_code == 401, (auth, resp.text)
        assert resp.json()["detail"]
    good = {"Authorization": f"Bearer {gw['opamp_token']}"}
    garbage = httpx.post(url, content=b"\xff\xff\xff not protobuf", headers={**PROTOBUF, **good})
    assert garbage.status_code == 400, garbage.text
    assert "ExportMetricsServiceRequest" in garbage.json()["detail"]
    bad_gzip = httpx.post(
        url, content=b"nope", headers={**PROTOBUF, **good, "Content-Encoding": "gzip"}
    )
    assert bad_gzip.status_code == 400, bad_gzip.text
    huge = httpx.post(url, content=b"\0" * (4 * 1024 * 1024 + 1), headers={**PROTOBUF, **good})
    assert huge.status_code == 413, huge.text
    bomb = gzip.compress(b"\0" * (5 * 1024 * 1024))
    inflated = httpx.post(
        url, content=bomb, headers={**PROTOBUF, **good, "Content-Encoding": "gzip"}
    )
    assert inflated.status_code == 413, inflated.text
    text = httpx.post(url, content=body, headers={"Content-Type": "text/plain", **good})
    assert text.status_code == 415, text.text
    # OTLP JSON is accepted too
    as_json = httpx.post(
        url,
        content=b'{"resourceMetrics": []}',
        headers={"Content-Type": "application/json", **good},
    )
    assert as_json.status_code == 200, as_json.text
    # nothing of the refused exports reached the gateway
    assert _status(org, gw["id"])["own_telemetry"] is None


async def test_enrolled_agent_gets_both_parts_with_its_new_token(org: Org) -> None:
    token = org.registration_token(max_uses=None)
    caps = DEFAULT_CAPS | REPORTS_OWN_METRICS | ACCEPTS_OPAMP_CONNECTION_SETTINGS
    url = org.server.ws_url + "/api/v1/opamp/v1/opamp"
    async with WsAgent(url, token, capabilities=caps, name="own-enrol") as agent:
        offer = (await agent.request(agent.full_state())).connection_settings
    opamp_headers = {h.key: h.value for h in offer.opamp.headers.headers}
    own_headers = {h.key: h.value for h in offer.own_metrics.headers.headers}
    assert own_headers == opamp_headers  # the gateway's own token, not the registration token
    assert own_headers["Authorization"] != f"Bearer {token}"
    # an agent on the /api path is offered the /api ingestion path
    assert offer.own_metrics.destination_endpoint == org.server.url + "/api/v1/otlp/v1/metrics"
    resp = httpx.post(
        offer.own_metrics.destination_endpoint,
        content=collector_export(0, 1.0).SerializeToString(),
        headers={**PROTOBUF, **own_headers},
    )
    assert resp.status_code == 200, resp.text
    (gw,) = org.get("/api/v1/gateways", name="own-enrol").json()["items"]
    status = wait_for(lambda: (st := _status(org, gw["id"]))["own_telemetry"] and st)
    assert status["metrics"]["logs_processed"] == 1000
    scrape = httpx.get(org.server.url + "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    accepted = [
        s.value
        for s in families["flowgate_own_metrics_exports"].samples
        if s.name.endswith("_total") and s.labels == {"result": "accepted"}
    ]
    assert accepted and accepted[0] >= 1


def test_a_deactivated_gateways_token_no_longer_sends_metrics(org: Org) -> None:
    gw = org.register()
    url = org.server.url + "/v1/otlp/v1/metrics"
    headers = {**PROTOBUF, "Authorization": f"Bearer {gw['opamp_token']}"}
    body = collector_export(0, 1.0).SerializeToString()
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    resp = org.admin.post(f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id})
    assert resp.status_code == 200, resp.text
    refused = wait_for(
        lambda: (r := httpx.post(url, content=body, headers=headers)).status_code == 401 and r
    )
    assert refused.json()["detail"]
