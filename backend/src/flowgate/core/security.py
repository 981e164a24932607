"""Hashing, token generation and JWTs. Secrets are never logged or stored in plain text."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

JWT_ALGORITHM = "HS256"
OPAMP_TOKEN_TYPE = "opamp_token"  # noqa: S105 - a type tag, not a secret
ACCESS_TOKEN_TYPE = "access"  # noqa: S105
API_KEY_PREFIX = "fgk_"

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_registration_token() -> str:
    """48 random bytes, URL-safe base64: 64 characters, as the seed specifies."""
    return secrets.token_urlsafe(48)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 hex digest of a high-entropy token (registration tokens, API keys, OpAMP JWTs)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def digests_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def encode_jwt(payload: dict[str, Any], key: str) -> str:
    return jwt.encode(payload, key, algorithm=JWT_ALGORITHM)


def decode_jwt(token: str, key: str, expected_type: str) -> dict[str, Any] | None:
    """Return the claims when the signature, expiry and type are valid, else None."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat", "sub"]}
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    if claims.get("type") != expected_type:
        return None
    return claims


def opamp_token(gateway_id: uuid.UUID, org_id: uuid.UUID, ttl_days: int, key: str) -> str:
    """The seed's OpAMP token: exactly sub, org_id, type, exp, iat.

    ``iat`` keeps microseconds (a NumericDate may be fractional, RFC 7519 section 2), so a
    re-registration within the same second still gets a new token, and the old one stops working.
    """
    now = datetime.now(UTC)
    payload = {
        "sub": str(gateway_id),
        "org_id": str(org_id),
        "type": OPAMP_TOKEN_TYPE,
        "exp": int((now + timedelta(days=ttl_days)).timestamp()),
        "iat": round(now.timestamp(), 6),
    }
    return encode_jwt(payload, key)


def access_token(user_id: uuid.UUID, ttl_minutes: int, key: str, version: int = 0) -> str:
    """A user's session token. ``ver`` is the user's credentials version when it was issued;
    a token whose version is no longer the user's (the password changed since) is refused."""
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "type": ACCESS_TOKEN_TYPE,
        "ver": version,
        "exp": int((now + timedelta(minutes=ttl_minutes)).timestamp()),
        "iat": int(now.timestamp()),
    }
    return encode_jwt(payload, key)


def bearer_token(authorization: str | None) -> str | None:
    """Extract the token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 4096:
        return None
    return token
