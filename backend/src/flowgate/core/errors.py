"""Domain errors that carry their HTTP status, and the handlers that render them.

Every error body is ``{"detail": "<message>"}`` like FastAPI's own, so clients parse one shape;
the one exception is :class:`ConfigRejected`, whose detail also lists where the errors are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowgate.core import outage

log = logging.getLogger(__name__)


class DomainError(Exception):
    status_code = 400
    detail = "Bad request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class NotAuthenticated(DomainError):
    status_code = 401
    detail = "Not authenticated"
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidRegistrationToken(NotAuthenticated):
    detail = "Invalid or expired registration token"


class InvalidOpAMPToken(NotAuthenticated):
    detail = "Invalid OpAMP token"


class Forbidden(DomainError):
    status_code = 403
    detail = "Insufficient permissions"


class InstanceMismatch(Forbidden):
    detail = "Instance ID does not match token"


class NotFound(DomainError):
    status_code = 404
    detail = "Not found"


class GatewayNotFound(NotFound):
    detail = "Gateway not found"


class Conflict(DomainError):
    status_code = 409
    detail = "Conflict"


class ConfigRejected(DomainError):
    """A configuration failed validation, so nothing was stored or sent: 422 with
    ``{"detail": {"message": str, "errors": [{"line", "column", "message"}, ...]}}`` (positions
    1-based, of the key or value at fault), the one error body whose detail is an object."""

    status_code = 422
    detail = "The configuration is not valid"

    def __init__(self, errors: Sequence[Mapping[str, Any]], message: str | None = None) -> None:
        super().__init__(message)
        self.errors = [dict(e) for e in errors]


class PayloadTooLarge(DomainError):
    status_code = 413
    detail = "Request body too large"


class UnstorableValue(DomainError):
    """A valid request whose JSON, together with what is already stored, is over the limits
    of :mod:`flowgate.core.jsonsafe` (the detail names the limit)."""

    status_code = 422
    detail = "Value too large to store"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # say why, not just "JSON decode error"
            reason = (err.get("ctx") or {}).get("error") or "not valid JSON"
            parts.append(f"body is not valid JSON: {reason} (at character {err['loc'][-1]})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "Invalid request"


def unavailable_response() -> JSONResponse:
    return JSONResponse(
        {"detail": outage.DETAIL},
        status_code=503,
        headers={"Retry-After": str(outage.RETRY_AFTER_SECONDS)},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(ConfigRejected)
    async def _config_rejected(_: Request, exc: ConfigRejected) -> JSONResponse:
        body = {"detail": {"message": exc.detail, "errors": exc.errors}}
        return JSONResponse(body, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Keep FastAPI's structured list too, but lead with a readable message.
        errors = [
            {k: v for k, v in e.items() if k in {"loc", "msg", "type"}} for e in exc.errors()[:20]
        ]
        return JSONResponse({"detail": _validation_message(exc), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        """The database cannot be reached: 503 + Retry-After, logged once per outage. Any
        other error of these classes goes on to the 500 handler below, as before."""
        if not outage.is_unavailable(exc):
            raise exc
        outage.tracker.failed(exc, where=request.url.path)
        return unavailable_response()

    # Also reached by a failed commit: the session dependency is function-scoped, so its
    # teardown runs inside the route handler, before the response starts.
    for cls in outage.DATABASE_ERRORS:
        app.add_exception_handler(cls, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "Internal server error"}, status_code=500)
