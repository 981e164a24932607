"""A thin HTTP client for tests: real requests to a live server, plus setup helpers."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

_ANONYMOUS: dict[str, httpx.Client] = {}


def anonymous(server: LiveServer) -> httpx.Client:
    """A client without credentials, kept per server: building an ``httpx.Client`` costs tens of
    milliseconds (TLS context), which adds up over thousands of calls. Pass headers per call."""
    found = _ANONYMOUS.get(server.url)
    if found is None or found.is_closed:
        found = _ANONYMOUS[server.url] = httpx.Client(base_url=server.url, timeout=15)
    return found


def login(server: LiveServer, email: str, password: str) -> str:
    resp = anonymous(server).post("/api/v1/auth/login", json={"email": email, "password": password})
    resp.raise_for_status()
    token: str = resp.json()["access_token"]
    return token


def client(server: LiveServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=15)


@dataclass
class Org:
    """A fresh organisation with an admin session, so tests never share fleet state."""

    server: LiveServer
    id: str
    name: str
    admin: httpx.Client

    def user(self, role: str) -> httpx.Client:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        password = secrets.token_urlsafe(12)
        resp = self.admin.post(
            "/api/v1/users",
            params={"org_id": self.id},
            json={"email": email, "password": password, "role": role},
        )
        assert resp.status_code == 201, resp.text
        return client(self.server, login(self.server, email, password))

    def registration_token(self, **body: Any) -> str:
        body.setdefault("name", "test token")
        resp = self.admin.post("/api/v1/registration-tokens", params={"org_id": self.id}, json=body)
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token

    def register(
        self, instance_id: str | None = None, token: str | None = None, **body: Any
    ) -> dict[str, Any]:
        token = token or self.registration_token()
        body.setdefault("name", "gw")
        body["instance_id"] = instance_id or f"gw-{uuid.uuid4().hex[:10]}"
        resp = anonymous(self.server).post(
            "/api/v1/gateways",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code in (200, 201), resp.text
        data: dict[str, Any] = resp.json()
        return data

    def heartbeat(self, gateway: dict[str, Any], body: Any = None) -> httpx.Response:
        return anonymous(self.server).post(
            f"/api/v1/opamp/heartbeat/{gateway['instance_id']}",
            json=body,
            headers={"Authorization": f"Bearer {gateway['opamp_token']}"},
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.admin.get(path, params={"org_id": self.id, **params})


def new_org(server: LiveServer, superuser: httpx.Client) -> Org:
    name = f"org-{uuid.uuid4().hex[:10]}"
    resp = superuser.post("/api/v1/orgs", json={"name": name})
    assert resp.status_code == 201, resp.text
    return Org(server=server, id=resp.json()["id"], name=name, admin=superuser)


def superuser_client(server: LiveServer) -> httpx.Client:
    return client(server, login(server, ADMIN_EMAIL, ADMIN_PASSWORD))
