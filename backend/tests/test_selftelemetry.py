"""FlowGate's own traces and metrics (flowgate.selftelemetry): a live server with
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP receiver in this test, whose
protobuf bodies are decoded with the ``opentelemetry-proto`` package; and without the variable,
the SDK is not even imported."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

import flowgate
from tests.support.api import anonymous, login, new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer
from tests.support.ws_agent import WsAgent

REDIS = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Receiver:
    """An OTLP/HTTP receiver: keeps every POST (path, headers, raw body) it was sent."""

    port: int = 0
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self, path: str) -> list[bytes]:
        return [body for got, _, body in self.posts if got == path]

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        found = []
        for body in self.bodies("/v1/traces"):
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    found += [(resource, span) for span in ss.spans]
        return found

    def metric_names(self) -> set[str]:
        names: set[str] = set()
        for body in self.bodies("/v1/metrics"):
            for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
                assert attrs(rm.resource.attributes)["service.name"] == "flowgate"
                for sm in rm.scope_metrics:
                    names |= {m.name for m in sm.metrics}
        return names


def value(v: AnyValue) -> Any:
    return getattr(v, v.WhichOneof("value") or "string_value")


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            got.posts.append((self.path, headers, body))
            reply = {
                "/v1/traces": ExportTraceServiceResponse,
                "/v1/metrics": ExportMetricsServiceResponse,
            }.get(self.path)
            if reply is None:
                self.send_response(404)
                self.end_headers()
                return
            payload = reply().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield got
    httpd.shutdown()
    httpd.server_close()


async def ws_exchange(server: LiveServer, token: str) -> None:
    agent = await WsAgent(server.ws_url + "/v1/opamp", token).connect()
    try:
        await agent.request(agent.full_state())
    finally:
        await agent.close()


def enrol_over_http(server: LiveServer, token: str) -> None:
    agent = WsAgent("unused", token, instance_id=f"otel-{uuid.uuid4().hex[:6]}")
    opamp = anonymous(server).post(
        "/v1/opamp",
        content=agent.full_state().SerializeToString(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )
    assert opamp.status_code == 200, opamp.content


def test_own_traces_and_metrics_reach_an_otlp_receiver_without_secrets(
    make_server: Callable[..., LiveServer], receiver: Receiver
) -> None:
    server = make_server(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=flowgate-test",
        # Nothing is exported on a schedule during the test: what arrives was flushed on stop.
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_METRIC_EXPORT_INTERVAL="600000",
        FLOWGATE_OTEL_OPAMP_SAMPLE_RATIO="1",
    )
    access = login(server, ADMIN_EMAIL, ADMIN_PASSWORD)
    with superuser_client(server) as admin:
        org = new_org(server, admin)
        registration = org.registration_token()
        gateway = org.register(token=registration)
        assert org.heartbeat(gateway, {"status": "healthy"}).status_code in (200, 204)
        assert org.get("/api/v1/gateways").status_code == 200
        enrolment = org.registration_token()
        enrol_over_http(server, enrolment)
        asyncio.run(ws_exchange(server, gateway["opamp_token"]))
        assert admin.get("/healthz").status_code == 200
    server.stop()

    spans = receiver.spans()
    assert spans, f"no spans arrived (posts: {[p for p, _, _ in receiver.posts]})"
    resources = [resource for resource, _ in spans]
    assert {r["service.name"] for r in resources} == {"flowgate"}
    assert all(r.get("service.version") and r.get("service.instance.id") for r in resources)
    assert all(h.get("x-tenant") == "flowgate-test" for _, h, _ in receiver.posts)

    by_name = {span.name: attrs(span.attributes) for _, span in spans}
    routes = {a.get("http.route") for a in by_name.values()}
    assert "/api/v1/gateways" in routes, sorted(by_name)
    # Every span, not one per name: many SQL spans share a name ("SELECT flowgate").
    all_spans = [attrs(span.attributes) for _, span in spans]
    sql = [a for a in all_spans if "db.system" in a or "db.system.name" in a]
    assert sql, f"no SQL spans: {sorted(by_name)}"
    statements = [a.get("db.statement") or a.get("db.query.text") or "" for a in sql]
    assert any("gateways" in s for s in statements), statements
    # OpAMP: one sampled span per message, never the HTTP instrumentation's.
    assert {"opamp-http", "opamp-ws connect", "opamp-ws"} <= set(by_name), sorted(by_name)
    targets = [str(a.get("http.target", a.get("url.path", ""))) for a in by_name.values()]
    assert not any(t.endswith("/v1/opamp") for t in targets), targets
    assert "/healthz" not in routes  # probes are not traced
    assert any(name.startswith("http.server") for name in receiver.metric_names())

    everything = b"".join(body for _, _, body in receiver.posts)
    for secret in (access, registration, enrolment, gateway["opamp_token"], ADMIN_PASSWORD):
        assert secret.encode() not in everything, f"a secret ({secret[:6]}...) was exported"


def test_without_the_endpoint_the_sdk_is_not_even_imported(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from flowgate.main import create_app\n"
        "from flowgate import selftelemetry\n"
        "app = create_app()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk',"
        " 'opentelemetry.instrumentation', 'opentelemetry.exporter')))\n"
        "assert not loaded, loaded\n"
        "assert selftelemetry.opamp_span is selftelemetry._off\n"
        "print('clean')\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "FLOWGATE_DATA_DIR": str(tmp_path),
        "FLOWGATE_SECRET_KEY": "k" * 48,
        # This checkout's flowgate, whatever the interpreter has installed.
        "PYTHONPATH": str(Path(flowgate.__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_every_worker_exports_as_its_own_instance(tmp_path: Path, receiver: Receiver) -> None:
    """``--workers 2``: each worker sets up its own providers after the fork (a provider made
    before it would have no export thread in the worker) and flushes them on stop."""
    server = LiveServer(
        data_dir=tmp_path / "data",
        database_url=None,
        extra_env={
            "FLOWGATE_REDIS_URL": REDIS,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "FLOWGATE_OTEL_OPAMP_SAMPLE_RATIO": "0",
        },
        args=("--workers", "2"),
    )
    try:
        server.launch().wait_ready(timeout=90)
        wait_for(lambda: server.full_log().count("Application startup complete.") == 2, timeout=90)
        # An unsampled OpAMP message: no span, and none for the queries it made (the enrolment
        # inserts a gateway), whichever worker took it.
        with superuser_client(server) as admin:
            org = new_org(server, admin)
            enrol_over_http(server, org.registration_token())
    finally:
        server.stop()
    spans = receiver.spans()
    instances = {resource["service.instance.id"] for resource, _ in spans}
    assert len(instances) == 2, instances
    names = {span.name for _, span in spans}
    assert "POST /api/v1/registration-tokens" in names, sorted(names)
    assert not any(name.startswith("opamp") for name in names), sorted(names)
    statements = [str(attrs(span.attributes).get("db.statement", "")) for _, span in spans]
    assert not any(s.startswith("INSERT INTO gateways") for s in statements), statements
