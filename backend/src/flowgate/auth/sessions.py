"""Browser sessions: a signed cookie in place of a bearer token, protected against CSRF.

Contract:

- Signing in (``POST /api/v1/auth/session``) starts a session of ``FLOWGATE_SESSION_TTL_MINUTES``
  and sets two cookies, both ``SameSite=Lax``, ``Path=/``, and ``Secure`` when the request came
  over https (see :func:`is_https`). The browser keeps them a day longer than the session lasts
  (``Max-Age``), so a request after the session ended still carries the cookie and is told the
  session expired (the UI says so), rather than that it is not signed in:

  * ``flowgate_session`` (``HttpOnly``): a JWT of type ``session`` with the user id (``sub``), the
    user's credentials version (``ver``: a password change since makes it invalid, exactly as for
    access tokens), a random session id (``sid``), ``iat`` and ``exp``;
  * ``flowgate_csrf`` (readable by the page's scripts): HMAC-SHA256 of the session id under a key
    derived from the secret key.

- A request carrying no bearer token is authenticated by the session cookie. When its method
  changes state (anything but GET, HEAD, OPTIONS) it must carry ``X-CSRF-Token`` equal to the
  ``flowgate_csrf`` cookie *and* to the HMAC of its own session's id (both compared in constant
  time), else ``403 CSRF token missing or invalid``. Another site cannot read the cookie to copy
  it into the header; binding the token to the session means a ``flowgate_csrf`` cookie planted by
  a sibling domain, or one of another session, does not pass either.
- A session cookie that is malformed, forged, expired, of a deactivated user or from before a
  password change is ``401 Session expired; sign in again``.
- Signing out clears both cookies. The session token itself stays valid until it expires (there
  is no server-side session table): changing the password ends every session at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Response

from flowgate.core.errors import Forbidden, NotAuthenticated
from flowgate.core.security import decode_jwt, encode_jwt
from flowgate.core.settings import Settings

SESSION_COOKIE = "flowgate_session"
CSRF_COOKIE = "flowgate_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_TOKEN_TYPE = "session"  # noqa: S105 - a type tag, not a secret
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How much longer than the session the browser keeps the cookies (see the contract above).
COOKIE_GRACE_SECONDS = 24 * 3600
#: Longer cookie values are not ours; refuse them before any parsing.
_MAX_TOKEN_LENGTH = 4096


class SessionExpired(NotAuthenticated):
    detail = "Session expired; sign in again"


class CsrfRejected(Forbidden):
    detail = "CSRF token missing or invalid"


def csrf_token(session_id: str, signing_key: str) -> str:
    """The CSRF token of a session: an HMAC of its id (a key of its own, derived from the
    secret key, so it is never a value the JWT signature could be confused with)."""
    key = hmac.new(signing_key.encode(), b"flowgate csrf key", hashlib.sha256).digest()
    mac = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def session_token(
    user_id: uuid.UUID, version: int, ttl_minutes: float, key: str
) -> tuple[str, str]:
    """A new session's signed token and its session id."""
    now = datetime.now(UTC)
    session_id = secrets.token_urlsafe(16)
    payload = {
        "sub": str(user_id),
        "type": SESSION_TOKEN_TYPE,
        "ver": version,
        "sid": session_id,
        "exp": int((now + timedelta(minutes=ttl_minutes)).timestamp()),
        "iat": int(now.timestamp()),
    }
    return encode_jwt(payload, key), session_id


def is_https(request: Request, settings: Settings) -> bool:
    """Whether the browser reached us over https (the cookies are then ``Secure``).

    ``FLOWGATE_PUBLIC_URL`` starting with https settles it. Otherwise ``X-Forwarded-Proto``
    decides only under ``FLOWGATE_TRUST_PROXY_HEADERS``: uvicorn already rewrites the URL scheme
    from that header for the proxies it trusts (loopback by default), so when the header is
    present the scheme alone cannot tell a proxy's word from a TLS connection.
    """
    if settings.public_url_is_https:
        return True
    forwarded = request.headers.get("x-forwarded-proto")
    if forwarded is not None:
        return settings.trust_proxy_headers and forwarded.split(",")[0].strip().lower() == "https"
    return request.url.scheme == "https"


def issue(
    response: Response, request: Request, settings: Settings, user_id: uuid.UUID, version: int
) -> None:
    """Start a session for the user: set both cookies on ``response``."""
    token, session_id = session_token(
        user_id, version, settings.session_ttl_minutes, settings.signing_key
    )
    common: dict[str, Any] = {
        "max_age": round(settings.session_ttl_minutes * 60) + COOKIE_GRACE_SECONDS,
        "path": "/",
        "secure": is_https(request, settings),
        "samesite": "lax",
    }
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, csrf_token(session_id, settings.signing_key), **common)


def clear(response: Response, request: Request, settings: Settings) -> None:
    """End the browser's session: expire both cookies (same attributes as when set)."""
    secure = is_https(request, settings)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="lax")


def cookie_token(request: Request) -> str | None:
    """The session cookie's value, or None when the request has none."""
    return request.cookies.get(SESSION_COOKIE) or None


def verify(request: Request, token: str, settings: Settings) -> dict[str, Any]:
    """The claims of the request's session token, after the CSRF check for methods that change
    state. Raises :class:`SessionExpired` (401) or :class:`CsrfRejected` (403). Whether the
    user may still use it (active, same credentials version) is the caller's check."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise SessionExpired()
    claims = decode_jwt(token, settings.signing_key, SESSION_TOKEN_TYPE)
    session_id = claims.get("sid") if claims else None
    if claims is None or not isinstance(session_id, str) or not session_id:
        raise SessionExpired()
    if request.method.upper() not in SAFE_METHODS:
        header = request.headers.get(CSRF_HEADER, "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        expected = csrf_token(session_id, settings.signing_key)
        # Both comparisons always run: no early exit telling which one failed.
        matches_cookie = hmac.compare_digest(header.encode(), cookie.encode())
        matches_session = hmac.compare_digest(header.encode(), expected.encode())
        if not (header and matches_cookie and matches_session):
            raise CsrfRejected()
    return claims
