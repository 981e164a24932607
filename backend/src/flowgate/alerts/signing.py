"""Webhook signing: each channel's secret, and the signature of a delivery.

A channel's secret is ``whsec_`` + base64url(HMAC-SHA256(server secret key, "flowgate-webhook:"
+ salt)): only the random salt is stored, so a copy of the database alone does not reveal any
secret, and the sender can still sign. It is shown once, when the channel is created. Changing
``FLOWGATE_SECRET_KEY`` changes every channel's secret (create the channels again).

A delivery's body is JSON whose ``timestamp`` (Unix seconds) equals the ``X-FlowGate-Timestamp``
header; ``X-FlowGate-Signature`` is ``sha256=<hex HMAC-SHA256(secret, body)>``. Signing the body
signs the timestamp, so a receiver that refuses old timestamps refuses replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-FlowGate-Signature"
TIMESTAMP_HEADER = "X-FlowGate-Timestamp"
EVENT_HEADER = "X-FlowGate-Event"
DELIVERY_HEADER = "X-FlowGate-Delivery"


def new_salt() -> str:
    return secrets.token_hex(16)


def channel_secret(signing_key: str, salt: str) -> str:
    mac = hmac.new(signing_key.encode(), f"flowgate-webhook:{salt}".encode(), hashlib.sha256)
    return "whsec_" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (in constant time)."""
    return hmac.compare_digest(signature(secret, body), header)
