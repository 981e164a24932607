"""A raw ASGI layer that adds security headers to every HTTP response.

On every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a Content-Security-Policy with ``frame-ancestors 'none'`` (no page
of ours may be framed). On the server's own endpoints outside ``/api/`` that is the whole policy:
``frame-ancestors`` governs only who may embed the page, so the Swagger UI at ``/docs`` (scripts
and styles from a CDN, an inline script) keeps working.

The web UI's pages (every path no server endpoint owns, see :mod:`flowgate.core.paths`) get a
policy of their own: everything from our origin only (scripts, styles, fonts, API and event
stream calls), images also as ``data:`` URLs, inline styles allowed (components set them), no
inline or foreign scripts, and no framing.

Under ``/api/`` the answers are JSON or protobuf, never pages, so the policy there is also
``default-src 'none'`` (nothing is ever loaded on their behalf), and ``Cache-Control: no-store``
replaces whatever was set: these answers carry tokens, keys and credentials, which no browser or
proxy may keep.

It is a raw ASGI layer, not a Starlette ``BaseHTTPMiddleware``, so it also covers the OpAMP
endpoints (which bypass FastAPI) and the early rejections of the request-limit layer when it is
added last. Responses the framework's last-resort 500 handler writes bypass every middleware.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowgate.core.paths import is_server_path

_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_PAGE_CSP = b"frame-ancestors 'none'"
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_UI_CSP = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"connect-src 'self'; frame-ancestors 'none'"
)
_API_PREFIX = "/api/"


def _policy(path: str) -> bytes:
    if path.startswith(_API_PREFIX):
        return _API_CSP
    return _PAGE_CSP if is_server_path(path) else _UI_CSP


class SecurityHeaders:
    """Outermost layer. Headers the application already set are kept, except ``Cache-Control``
    under ``/api/``, which is always ``no-store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api = path.startswith(_API_PREFIX)
        extra = [*_COMMON, (b"content-security-policy", _policy(path))]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", ())
                    if not (api and k.lower() == b"cache-control")
                ]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
