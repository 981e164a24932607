"""The route classes of every FastAPI router: bodies too deep to parse, and the audit log.

**Deep bodies.** The standard library's ``json`` parser recurses once per nesting level, so a
hostile body nested ~1000 deep raises RecursionError, which FastAPI reports as a vague 400
"There was an error parsing the body" — or parses it, depending on how deep the stack already
is. Here a body that hits the limit is parsed again on a fresh thread (so the outcome never
depends on the route), one that is still too deep is a JSON error (422), and whatever parses is
refused by the storable-value check (``core/schemas.py``) with its path when nested deeper
than 32.

**Audit.** Every route of an :func:`api_router` that changes state (any method but GET/HEAD)
is audited here, in one place, so no handler writes audit rows by hand:

- the action is derived from the operation id (``deactivate_gateway`` -> ``gateway.deactivate``,
  ``create_config_version`` -> ``config.version.create``; routes under ``/auth/`` are
  ``auth.<operation id>``), or given with ``openapi_extra={"x-audit-action": ...}``; the
  OpenAPI document lists it per operation as ``x-audit-action``;
- the object is the last path parameter (its type named by the path segment before it); a
  route answering 201 under a collection (``POST /configs``, ``POST /configs/{id}/versions``)
  made its object, whose id (and organisation) the answer carries;
- who is calling is noted by the credential checks (``flowgate.auth.principal``), which org by
  the org access check;
- on success the record joins the request's own unit of work just before it commits, so the
  change and its audit row commit together or not at all; when the request fails (the unit of
  work rolled back) the record is written by ``app.state.audit`` in a transaction of its own,
  from the route's first dependency (:func:`_guard`).

Routers whose POSTs change nothing a person did (agent heartbeats, dry-run validation) are made
with ``api_router(audit=False)``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from flowgate.core import outage
from flowgate.core.audit import AuditRecord, AuditSink, Result, bind, of_request, open_record
from flowgate.core.deps import UowDep
from flowgate.core.errors import DomainError
from flowgate.core.uow import UnitOfWork

#: Multi-word nouns kept whole in action names (``api_key.create``, not ``api.key.create``).
COMPOUND_NOUNS = ("alert_rule", "api_key", "notification_channel", "registration_token")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REQUEST = "flowgate_audit_request"
_RESPONSE = "flowgate_audit_response"
_UOW = "flowgate_audit_uow"


class _JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = (await self.body()).decode("utf-8", "surrogatepass")
            try:
                self._json = json.loads(body)
            except RecursionError:
                # The request's own call stack used up part of the limit: parse again on a
                # fresh thread's stack, so how deep a body may be does not depend on the path.
                try:
                    self._json = await asyncio.to_thread(json.loads, body)
                except RecursionError:
                    raise json.JSONDecodeError("nested too deeply", body, 0) from None
        return self._json


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return route


# -- audit --------------------------------------------------------------------------------------


def _singular(segment: str) -> str:
    return segment.removesuffix("s").replace("-", "_")


def derive_action(path: str, operation_id: str) -> str:
    """``deactivate_gateway`` -> ``gateway.deactivate``; ``/auth/...`` -> ``auth.<id>``."""
    if "/auth/" in path:
        return f"auth.{operation_id}"
    verb, _, noun = operation_id.partition("_")
    if not noun:
        return operation_id
    for compound in COMPOUND_NOUNS:
        noun = noun.replace(compound, compound.replace("_", "-"))
    return ".".join([*(p.replace("-", "_") for p in noun.split("_")), verb])


def derive_object(path: str, creates: bool) -> tuple[str | None, str | None]:
    """The object type and the path parameter holding its id (None: the answer carries it)."""
    segments = [s for s in path.split("/") if s]
    params = [i for i, s in enumerate(segments) if s.startswith("{")]
    last = segments[-1] if segments else ""
    # POST /configs/{config_id}/versions makes a config.version; .../{id}/rollback acts on {id}
    if creates and not last.startswith("{") and (last.endswith("s") or not params):
        parent = [_singular(segments[i - 1]) for i in params[-1:] if i > 0]
        return ".".join([*parent, _singular(last)]), None
    if not params:
        return None, None
    i = params[-1]
    kind = _singular(segments[i - 1]) if i > 0 else None
    return kind, segments[i].strip("{}").split(":")[0]


def outcome(exc: BaseException) -> tuple[Result, int]:
    if isinstance(exc, DomainError | HTTPException):
        code = exc.status_code
    elif isinstance(exc, RequestValidationError):
        code = 422
    elif outage.is_unavailable(exc):
        code = 503
    else:
        code = 500
    return ("denied" if code in (401, 403) else "failed"), code


def fallback_org(connection: HTTPConnection, record: AuditRecord) -> None:
    """A request that never reached its org check: the org it named, if the actor is in it,
    else the actor's only org."""
    if record.org_id is not None:
        return
    named = connection.query_params.get("org_id")
    try:
        org = uuid.UUID(named) if named else None
    except ValueError:
        org = None
    if org is not None and org in record.actor_orgs:
        record.org_id = org
    elif len(record.actor_orgs) == 1:
        record.org_id = record.actor_orgs[0]


def _audited(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint``, taking also the request, its response and its unit of work (the same one
    the endpoint's own ``UowDep`` gets): the record is staged once the endpoint returned and
    before the unit of work commits."""
    if getattr(endpoint, "__flowgate_audited__", False):
        return endpoint  # a router included into another: already wrapped
    is_async = inspect.iscoroutinefunction(endpoint)
    signature = inspect.signature(endpoint)
    try:
        typed = inspect.signature(endpoint, eval_str=True).parameters
    except NameError:
        typed = signature.parameters

    def own(kind: type) -> str | None:
        """FastAPI hands the request (the response) to one parameter: reuse the endpoint's."""
        for name, p in typed.items():
            if isinstance(p.annotation, type) and issubclass(p.annotation, kind):
                return name
        return None

    request_name, response_name = own(Request), own(Response)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
        for name, kind, mine in (
            (_REQUEST, Request, request_name is None),
            (_RESPONSE, Response, response_name is None),
            (_UOW, UowDep, True),
        )
        if mine
    ]

    @functools.wraps(endpoint)
    async def audited(*args: Any, **kwargs: Any) -> Any:
        request: Request = kwargs[request_name] if request_name else kwargs.pop(_REQUEST)
        response: Response = kwargs[response_name] if response_name else kwargs.pop(_RESPONSE)
        uow: UnitOfWork = kwargs.pop(_UOW)
        record = of_request(request)
        if record is not None:
            bind(uow.session, record)
        if is_async:
            result = await endpoint(*args, **kwargs)
        else:
            result = await run_in_threadpool(endpoint, *args, **kwargs)
        if record is not None:
            _enrich(request, record, result, response)
            sink: AuditSink | None = getattr(request.app.state, "audit", None)
            if sink is not None:
                sink.stage(uow, record)
        return result

    params = [*signature.parameters.values()]
    at = next(
        (i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params)
    )
    audited.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], *extra, *params[at:]]
    )
    audited.__flowgate_audited__ = True  # type: ignore[attr-defined]
    return audited


def _enrich(request: Request, record: AuditRecord, result: Any, response: Response) -> None:
    if isinstance(result, Response):
        record.status_code = result.status_code
    elif response.status_code:
        record.status_code = response.status_code
    if record.object_type is not None and record.object_id is None:
        made = getattr(result, "id", None)
        if made is not None:
            record.object_id = str(made)
    if record.org_id is None:
        org = getattr(result, "org_id", None)
        if isinstance(org, uuid.UUID):
            record.org_id = org
        elif record.object_type == "org" and record.object_id:
            record.org_id = uuid.UUID(record.object_id)
    if record.object_type is None and record.actor_kind == "user" and record.actor_id:
        record.target("user", record.actor_id)  # signing in, changing one's password
    fallback_org(request, record)


class AuditedRoute(JSONRoute):
    """A JSON route; if it changes state, every call to it is audited (module docstring)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ("GET",)}
        self.audit_action: str | None = None
        if methods - READ_METHODS:
            extra = dict(kwargs.get("openapi_extra") or {})
            operation_id = kwargs.get("operation_id") or endpoint.__name__
            self.audit_action = extra.get("x-audit-action") or derive_action(path, operation_id)
            extra["x-audit-action"] = self.audit_action
            kwargs["openapi_extra"] = extra
            object_type, param = derive_object(path, kwargs.get("status_code") == 201)
            guard = _guard(self.audit_action, object_type, param, kwargs.get("status_code"))
            # First of the route's dependencies: the record is open before the credential
            # checks run, and the guard's teardown comes after the unit of work's.
            kwargs["dependencies"] = [Depends(guard), *(kwargs.get("dependencies") or [])]
            endpoint = _audited(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _guard(
    action: str, object_type: str | None, param: str | None, status: int | None
) -> Callable[[Request], AsyncIterator[None]]:
    """The route's audit dependency: opens the request's record and, when the request fails,
    hands it to the sink. A dependency with ``yield`` of request scope tears down after the
    function-scoped unit of work, so the failure is written once the request's own
    transaction has rolled back (and sees a failed commit too)."""

    async def audit(request: Request) -> AsyncIterator[None]:
        record = AuditRecord(
            action=action,
            object_type=object_type,
            address=request.client.host if request.client else None,
            status_code=status or 200,
        )
        if param is not None and param in request.path_params:
            record.object_id = str(request.path_params[param])[:200]
        open_record(request, record)
        try:
            yield
        except Exception as exc:
            record.result, record.status_code = outcome(exc)
            fallback_org(request, record)
            sink: AuditSink | None = getattr(request.app.state, "audit", None)
            if sink is not None:
                await sink.failed(request, record)
            raise

    return audit


def api_router(*, audit: bool = True, **options: Any) -> APIRouter:
    """An ``APIRouter`` whose routes answer a body too deep to parse with 422 and, unless
    ``audit`` is false, audit every call that changes state."""
    return APIRouter(route_class=AuditedRoute if audit else JSONRoute, **options)
