"""The ASGI application: ``create_app()`` wires settings, database, routers and background tasks."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from flowgate import __version__, selftelemetry
from flowgate.core.errors import install_error_handlers
from flowgate.core.headers import SecurityHeaders
from flowgate.core.limits import RequestLimits
from flowgate.core.settings import Settings
from flowgate.core.startlock import startup_lock
from flowgate.fleet import gcstats
from flowgate.metrics import build_registry, render
from flowgate.orgs import service as orgs
from flowgate.runtime import Runtime, build_runtime

log = logging.getLogger(__name__)

OPAMP_PATHS = ("/v1/opamp", "/api/v1/opamp/v1/opamp")


async def bootstrap(runtime: Runtime) -> None:
    """Create org ``default`` and its admin on an empty database. Processes starting together
    take turns (start-up lock) and each re-checks inside it, so exactly one creates them."""
    s = runtime.settings
    password = s.bootstrap_admin_password.get_secret_value() if s.bootstrap_admin_password else None
    async with startup_lock(s.resolved_database_url), runtime.unit_of_work() as uow:
        result = await orgs.bootstrap(uow.session, s.bootstrap_admin_email, password)
    if result is None:
        return
    log.info(
        "bootstrapped organization 'default' and its admin", extra={"email": result.admin.email}
    )
    if result.generated_password:
        # Printed once, to the console only, so the first person can sign in.
        print(
            "\n=== FlowGate first start ===\n"
            f"Organization: default\nAdmin email:  {result.admin.email}\n"
            f"Admin password (shown once): {result.generated_password}\n"
            f"Change it: flowgate users set-password {result.admin.email}"
            " (or POST /api/v1/auth/password when signed in).\n"
            "Or choose it: set FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD before the first start.\n",
            flush=True,
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings)
    own_telemetry: selftelemetry.SelfTelemetry | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bootstrap(runtime)
        gc_task = gcstats.start(settings.gc_freeze_seconds, settings.gc_unfreeze_seconds)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            await gcstats.stop(gc_task)
            if own_telemetry is not None:
                await own_telemetry.shutdown()  # last: flushes the spans of the stop too

    app = FastAPI(
        title="FlowGate",
        version=__version__,
        description="Control plane for fleets of OpenTelemetry Collector gateways.",
        lifespan=lifespan,
    )
    runtime.expose(app.state)
    install_error_handlers(app)

    from flowgate.alerts.router import routers as alerting_routers
    from flowgate.audit.router import router as audit_router
    from flowgate.auth.router import router as people_router
    from flowgate.configs.router import router as configs_router
    from flowgate.deployments.checks import router as checks_router
    from flowgate.deployments.router import gateway_router as push_router
    from flowgate.deployments.router import router as deployments_router
    from flowgate.events.router import router as events_router
    from flowgate.gateways.agent_router import router as agent_router
    from flowgate.gateways.router import fleet_router
    from flowgate.gateways.router import router as gateways_router
    from flowgate.opamp.own_metrics_router import router as own_metrics_router
    from flowgate.opamp.transport import mount_opamp
    from flowgate.tokens.router import router as tokens_router
    from flowgate.ui.serve import mount_ui

    app.include_router(people_router)
    app.include_router(tokens_router)
    app.include_router(gateways_router)
    app.include_router(fleet_router)
    app.include_router(agent_router)
    app.include_router(checks_router)
    app.include_router(configs_router)
    app.include_router(deployments_router)
    app.include_router(push_router)
    app.include_router(events_router)
    app.include_router(audit_router)
    app.include_router(own_metrics_router)
    for alerting_router in alerting_routers:
        app.include_router(alerting_router)
    mount_opamp(app, runtime.agents, runtime.authenticator, OPAMP_PATHS)

    @app.get("/healthz", tags=["ops"], operation_id="healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    registry = build_registry(runtime)

    metrics_token = (
        settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
    )

    @app.get("/metrics", tags=["ops"], operation_id="metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (docs/observability.md): this replica's counters and internals,
        and the fleet gauges. With ``FLOWGATE_METRICS_TOKEN`` set, only for
        ``Authorization: Bearer <token>``."""
        if metrics_token is not None:
            sent = request.headers.get("authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(sent, b"Bearer " + metrics_token):
                return JSONResponse(
                    {"detail": "Not authenticated"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", tags=["ops"], operation_id="readyz", response_model=None)
    async def readyz() -> Any:
        """The database answers; orchestrators route traffic only when this is 200."""
        try:
            async with runtime.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            log.warning("readiness check failed: database unreachable")
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return {"status": "ok", "database": "ok"}

    mount_ui(app, settings.ui_dir)  # last: it answers only paths no route above owns

    app.add_middleware(
        RequestLimits,
        max_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        skip_prefixes=OPAMP_PATHS,
    )
    app.add_middleware(SecurityHeaders)  # added last = outermost: covers every layer's answers
    # FlowGate's own traces and metrics: only with OTEL_EXPORTER_OTLP_ENDPOINT set, once per
    # process (each --workers worker builds its app, so its providers, after the fork).
    own_telemetry = selftelemetry.install(app, runtime.db.engine, settings)
    return app
