"""A raw ASGI layer that adds security headers to every HTTP response.

On every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a Content-Security-Policy with ``frame-ancestors 'none'`` (no page
of ours may be framed). ``frame-ancestors`` governs only who may embed the page, so the Swagger
UI at ``/docs`` (scripts and styles from a CDN, an inline script) and a future UI keep working.

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

_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_PAGE_CSP = b"frame-ancestors 'none'"
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_API_PREFIX = "/api/"


class SecurityHeaders:
    """Outermost layer. Headers the application already set are kept, except ``Cache-Control``
    under ``/api/``, which is always ``no-store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(_API_PREFIX)
        extra = [
            *_COMMON,
            (b"content-security-policy", _API_CSP if api else _PAGE_CSP),
        ]

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
