"""FlowGate's own traces and metrics over OTLP/HTTP, on when ``OTEL_EXPORTER_OTLP_ENDPOINT``
is set (docs/observability.md, "FlowGate's own traces and metrics").

Off by default and free when off: nothing from the OpenTelemetry SDK or its instrumentations is
imported, no middleware is added and the OpAMP hot path pays one call returning a shared no-op
context manager. When on, :func:`install` (called once per process by ``create_app``, so once
per ``--workers`` worker, after the fork) builds a tracer and a meter provider from the standard
``OTEL_*`` variables (service name, resource attributes, sampler, exporter headers, timeout,
batch and export intervals), instruments the FastAPI application (routes, durations) and the
database engine (statements without parameters), and :meth:`SelfTelemetry.shutdown` flushes
both on server stop.

Secrets stay out: no request or response headers are recorded unless an operator opts in with
the instrumentation's own variables, and then credential headers are redacted; SQL statements
carry placeholders only; OpAMP paths (every agent's polls and frames) are not traced by the
HTTP instrumentation at all, only as sampled ``opamp`` spans (``FLOWGATE_OTEL_OPAMP_SAMPLE_RATIO``),
and an unsampled OpAMP message runs with instrumentation suppressed, so its queries make no
spans either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flowgate import __version__

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

    from flowgate.core.settings import Settings

log = logging.getLogger(__name__)

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
DEFAULT_SERVICE_NAME = "flowgate"
#: Never traced by the HTTP instrumentation: probes and scrapes (noise), and OpAMP (the hot
#: path, traced only when sampled). Regexes searched in the request URL.
EXCLUDED_URLS = ("/healthz$", "/readyz$", "/metrics$", "/v1/opamp/?$")
#: Redacted if an operator captures headers (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*).
SANITIZED_HEADERS = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    ".*token.*",
    ".*csrf.*",
    ".*secret.*",
    ".*key.*",
    ".*session.*",
    ".*password.*",
]

_NOTHING: AbstractContextManager[object] = contextlib.nullcontext()


def _off(name: str) -> AbstractContextManager[object]:
    return _NOTHING


#: The OpAMP hot path's hook: ``with selftelemetry.opamp_span("opamp-http"): ...``. A no-op
#: until :func:`install` replaces it (per process), and again after shutdown.
opamp_span: Callable[[str], AbstractContextManager[object]] = _off


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(environ.get(ENDPOINT, "").strip())


class SelfTelemetry:
    """The providers of one process; :meth:`shutdown` flushes and stops them."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    async def shutdown(self) -> None:
        """Flush spans and metrics, both at once and off the event loop: an unreachable receiver
        delays the stop by at most ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s), not twice that."""
        global opamp_span
        opamp_span = _off
        results = await asyncio.gather(
            asyncio.to_thread(self.tracer_provider.shutdown),  # what the batch still holds
            asyncio.to_thread(self.meter_provider.shutdown),  # a last collection, exported
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("flushing FlowGate's own telemetry failed", exc_info=result)


def install(app: FastAPI, engine: AsyncEngine, settings: Settings) -> SelfTelemetry | None:
    """Instrument this process when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; else do nothing."""
    if not enabled():
        return None
    # Imported here only: a FlowGate without the variable never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import (
        SERVICE_INSTANCE_ID,
        SERVICE_NAME,
        SERVICE_VERSION,
        OTELResourceDetector,
        Resource,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
    if protocol not in ("", "http/protobuf"):
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; FlowGate exports OTLP/HTTP "
            "(http/protobuf)",
            protocol,
        )
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over these defaults.
    from_env = OTELResourceDetector().detect().attributes
    attributes: dict[str, str] = {SERVICE_VERSION: __version__}
    if not from_env.get(SERVICE_NAME):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if not from_env.get(SERVICE_INSTANCE_ID):
        attributes[SERVICE_INSTANCE_ID] = str(uuid.uuid4())  # this process (worker)
    resource = Resource.create(attributes)

    # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, the batch
    # processor and the exporters from OTEL_BSP_*, OTEL_METRIC_EXPORT_* and OTEL_EXPORTER_OTLP_*.
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )

    excluded = ",".join(
        filter(
            None,
            (
                *EXCLUDED_URLS,
                os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
                or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS"),
            ),
        )
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        excluded_urls=excluded,
        http_capture_headers_sanitize_fields=SANITIZED_HEADERS,
        exclude_spans=["receive", "send"],
    )
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        enable_commenter=False,
        # It declares SQLAlchemy < 2.1; the engine events it listens to are unchanged in 2.1
        # (tests/test_selftelemetry.py checks the SQL spans arrive).
        skip_dep_check=True,
    )
    _install_opamp_spans(tracer_provider, settings.otel_opamp_sample_ratio)
    where = urlsplit(os.environ[ENDPOINT].strip())
    log.info(
        "exporting FlowGate's own traces and metrics over OTLP/HTTP",
        extra={"otlp_endpoint": f"{where.scheme}://{where.hostname}:{where.port or ''}"},
    )
    return SelfTelemetry(tracer_provider, meter_provider)


def _install_opamp_spans(tracer_provider: TracerProvider, ratio: float) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation
    from opentelemetry.trace import SpanKind

    tracer = tracer_provider.get_tracer("flowgate.opamp", __version__)

    @contextlib.contextmanager
    def sampled(name: str) -> Iterator[object]:
        with tracer.start_as_current_span(
            name, kind=SpanKind.SERVER, attributes={"opamp.transport": name}
        ) as span:
            yield span

    def span(name: str) -> AbstractContextManager[object]:
        if ratio > 0 and random.random() < ratio:
            return sampled(name)
        return suppress_instrumentation()  # its queries make no spans either

    global opamp_span
    opamp_span = span
