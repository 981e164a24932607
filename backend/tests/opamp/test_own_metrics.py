"""The ``own_metrics`` offer in the sans-I/O core, and the numbers derived from OTLP points."""

from __future__ import annotations

import pytest

from flowgate.opamp import core
from flowgate.opamp.core import (
    ACCEPTS_OPAMP_CONNECTION_SETTINGS,
    REPORTS_CONNECTION_SETTINGS_STATUS,
    REPORTS_OWN_METRICS,
    ConnectionSettingsOffer,
    TelemetryOffer,
    process,
)
from flowgate.opamp.own_metrics import OwnMetrics, Sample
from flowgate.opamp.proto import opamp_pb2

UID = bytes(range(16))
OPAMP = ConnectionSettingsOffer(
    headers={"Authorization": "Bearer t0k3n"},
    heartbeat_interval_seconds=30,
    destination_endpoint="wss://flowgate.example/v1/opamp",
)
OWN = TelemetryOffer(
    headers={"Authorization": "Bearer t0k3n"},
    destination_endpoint="https://flowgate.example/v1/otlp/v1/metrics",
)


def msg(seq: int, caps: int, **fields: object) -> opamp_pb2.AgentToServer:
    return opamp_pb2.AgentToServer(instance_uid=UID, sequence_num=seq, capabilities=caps, **fields)  # type: ignore[arg-type]


def test_own_metrics_only_for_agents_that_report_them() -> None:
    without = process(msg(0, ACCEPTS_OPAMP_CONNECTION_SETTINGS), None, own_metrics=OWN)
    assert not without.reply.HasField("connection_settings")
    reply = process(msg(0, REPORTS_OWN_METRICS), None, own_metrics=OWN).reply
    offer = reply.connection_settings
    assert not offer.HasField("opamp")
    assert offer.own_metrics.destination_endpoint == OWN.destination_endpoint
    assert [(h.key, h.value) for h in offer.own_metrics.headers.headers] == [
        ("Authorization", "Bearer t0k3n")
    ]
    assert offer.hash and offer.hash != OWN.hash


def test_opamp_only_offer_keeps_its_hash_and_both_parts_share_one() -> None:
    caps = ACCEPTS_OPAMP_CONNECTION_SETTINGS
    alone = process(msg(0, caps), None, connection_settings=OPAMP, own_metrics=OWN).reply
    assert alone.connection_settings.hash == OPAMP.hash
    assert not alone.connection_settings.HasField("own_metrics")
    both = process(
        msg(0, caps | REPORTS_OWN_METRICS), None, connection_settings=OPAMP, own_metrics=OWN
    ).reply.connection_settings
    assert both.HasField("opamp") and both.HasField("own_metrics")
    assert both.hash not in (OPAMP.hash, OWN.hash)


def test_own_metrics_follow_the_reported_hash_and_change_re_offers() -> None:
    caps = REPORTS_OWN_METRICS | REPORTS_CONNECTION_SETTINGS_STATUS
    first = process(msg(0, caps), None, own_metrics=OWN)
    offered = first.reply.connection_settings.hash
    status = opamp_pb2.ConnectionSettingsStatus(
        last_connection_settings_hash=offered,
        status=opamp_pb2.ConnectionSettingsStatuses_APPLIED,
    )
    applied = process(msg(1, caps, connection_settings_status=status), first.state, own_metrics=OWN)
    assert not applied.reply.HasField("connection_settings")
    moved = TelemetryOffer(
        headers=dict(OWN.headers), destination_endpoint="https://elsewhere.example/v1/metrics"
    )
    again = process(msg(2, caps), applied.state, own_metrics=moved)
    assert again.connection_settings_sent
    assert again.reply.connection_settings.own_metrics.destination_endpoint.startswith(
        "https://elsewhere"
    )


def test_without_status_each_distinct_offer_goes_once_and_gaining_the_capability_offers() -> None:
    first = process(msg(0, 0), None, own_metrics=OWN)
    assert not first.reply.HasField("connection_settings")
    gained = process(msg(1, REPORTS_OWN_METRICS), first.state, own_metrics=OWN)
    assert gained.connection_settings_sent
    quiet = process(msg(2, REPORTS_OWN_METRICS), gained.state, own_metrics=OWN)
    assert not quiet.reply.HasField("connection_settings")
    pushed = core.push_message(gained.state, None, own_metrics=OWN)
    assert pushed is None  # already offered


@pytest.mark.parametrize("url", ["ws://x/v1/metrics", "not a url", "https://"])
def test_telemetry_offer_needs_an_http_url(url: str) -> None:
    with pytest.raises(ValueError):
        TelemetryOffer(headers={}, destination_endpoint=url)


def _sample(family: str, t: int, v: float, start: int = 1, **attrs: str) -> Sample:
    return Sample(family, (family, tuple(sorted(attrs.items()))), t * 10**9, start, v, True)


def test_rates_from_cumulative_counters_and_a_reset_starts_again() -> None:
    own = OwnMetrics()
    gw = "gw"
    out = own.ingest(gw, [_sample("otelcol_receiver_accepted_log_records", 10, 100)])
    assert out["logs_processed"] == 100 and out["accepted_per_second"] is None
    out = own.ingest(gw, [_sample("otelcol_receiver_accepted_log_records", 20, 300)])
    assert out["accepted_per_second"] == 20.0 and out["window_seconds"] == 10
    # a re-sent point changes nothing
    assert own.ingest(gw, [_sample("otelcol_receiver_accepted_log_records", 20, 300)]) == out
    # the collector restarted: the counter starts again, no negative rate
    out = own.ingest(gw, [_sample("otelcol_receiver_accepted_log_records", 30, 5, start=25)])
    assert out["logs_processed"] == 5 and out["accepted_per_second"] is None


def test_memory_is_bounded_per_series_per_gateway_and_gateways() -> None:
    own = OwnMetrics(max_gateways=2)
    family = "otelcol_exporter_sent_spans"
    many = [_sample(family, 1, 1, exporter=str(i)) for i in range(1000)]
    out = own.ingest("a", many)
    assert out["sent"] == 256  # MAX_SERIES series kept
    for t in range(2, 50):
        own.ingest("a", [_sample(family, t, t, exporter="0")])
    own.ingest("b", [])
    own.ingest("c", [])
    assert len(own) == 2
