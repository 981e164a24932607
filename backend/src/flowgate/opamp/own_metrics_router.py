"""OTLP/HTTP metrics ingestion for the Collectors' own telemetry (``own_metrics`` offers).

``POST /v1/otlp/v1/metrics`` (and ``/api/v1/otlp/v1/metrics``) takes an
``ExportMetricsServiceRequest`` as ``application/x-protobuf`` (or OTLP JSON), optionally
gzipped, authorised by the gateway's OpAMP token (``Authorization: Bearer``, the header the
offer carries). Answers: 200 with an ``ExportMetricsServiceResponse``; 401 for a missing or
bad credential (a registration token is not enough: the numbers belong to one gateway); 400
for a body that is not an export; 413 over :data:`~flowgate.opamp.own_metrics.MAX_BODY_BYTES`;
415 for another media type; 503 + ``Retry-After`` when the credential needs the database and
it cannot be reached (or too much database work is queued).

The derived numbers (:mod:`flowgate.opamp.own_metrics`) are buffered in presence and written
with the next batched flush to ``extra_metadata.own_metrics`` of the gateway's row, guarded by
the token digest like every heartbeat; nothing is written per request.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from starlette.requests import ClientDisconnect

from flowgate import telemetry
from flowgate.core import outage
from flowgate.core.db import utcnow
from flowgate.core.errors import DomainError
from flowgate.core.security import bearer_token
from flowgate.opamp import own_metrics
from flowgate.opamp.auth import Busy

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"

EXPORTS = telemetry.Counter(
    "flowgate_own_metrics_exports",
    "OTLP exports of the Collectors' own metrics, by result",
    ("result",),
    known=tuple(
        (r,)
        for r in (
            "accepted",
            "unauthorized",
            "bad_request",
            "too_large",
            "unsupported",
            "unavailable",
        )
    ),
)


_RESULTS = {400: "bad_request", 401: "unauthorized", 413: "too_large", 415: "unsupported"}


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    EXPORTS.inc(_RESULTS.get(status, "unavailable"))
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _unauthorised(detail: str) -> JSONResponse:
    return _error(401, detail, {"WWW-Authenticate": "Bearer"})


async def _read(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > own_metrics.MAX_BODY_BYTES:
                raise own_metrics.TooLarge("export exceeds the size limit")
        except ValueError:
            raise own_metrics.BadExport("invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > own_metrics.MAX_BODY_BYTES:
            raise own_metrics.TooLarge("export exceeds the size limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def export_metrics(request: Request) -> Response:
    runtime: Any = request.app.state.runtime
    try:
        cred = await runtime.authenticator.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
    except DomainError as exc:
        log.info("own metrics export refused: bad credential")
        return _unauthorised(exc.detail)
    except Exception as exc:
        if isinstance(exc, Busy):
            detail = "server is overloaded; retry later"
        elif outage.is_unavailable(exc):
            outage.tracker.failed(exc, where="own metrics authentication")
            detail = outage.DETAIL
        else:
            raise
        retry = str(runtime.settings.opamp_retry_after_seconds)
        return _error(503, detail, {"Retry-After": retry})
    if cred.kind != "opamp" or cred.ident is None:
        return _unauthorised("Own metrics need the gateway's OpAMP token")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (_PROTOBUF, _JSON):
        return _error(415, "Content-Type must be application/x-protobuf or application/json")
    try:
        body = await _read(request)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding == "gzip":
            body = own_metrics.gunzip(body)
        elif encoding not in ("", "identity"):
            return _error(415, "Content-Encoding must be gzip or identity")
        export = own_metrics.decode(body, media_type)
    except own_metrics.TooLarge as exc:
        return _error(413, str(exc))
    except own_metrics.BadExport as exc:
        return _error(400, str(exc))
    except ClientDisconnect:
        return _error(400, "the client went away")
    gateway_id = cred.ident.gateway_id
    found = own_metrics.samples(export)
    if found:
        derived = runtime.agents.own_metrics.ingest(gateway_id, found)
        runtime.presence.record(
            gateway_id,
            cred.ident.token_digest or "",
            metadata={"own_metrics": derived, "own_metrics_updated_at": utcnow().isoformat()},
        )
    EXPORTS.inc("accepted")
    reply = ExportMetricsServiceResponse()
    if media_type == _JSON:
        return Response(b"{}", media_type=_JSON)
    return Response(reply.SerializeToString(), media_type=_PROTOBUF)


for _path in own_metrics.PATHS:
    router.add_api_route(_path, export_metrics, methods=["POST"], include_in_schema=False)
