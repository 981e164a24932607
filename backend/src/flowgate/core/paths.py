"""Paths the server itself answers: the web UI (served at ``/``) never shadows them."""

from __future__ import annotations

#: The API, native OpAMP, operations endpoints and the API documentation. An unknown path under
#: one of these is the API's JSON 404, never the UI's page.
SERVER_PREFIXES = (
    "/api",
    "/v1/opamp",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/redoc",
)


def is_server_path(path: str) -> bool:
    """True for ``path`` equal to one of :data:`SERVER_PREFIXES` or below it."""
    return any(path == p or path.startswith(p + "/") for p in SERVER_PREFIXES)
