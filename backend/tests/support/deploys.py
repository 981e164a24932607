"""Configuration templates and deployments through the API, for tests that drive rollouts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.api import Org


def labelled_gateway(org: Org, name: str | None = None, **labels: str) -> dict[str, Any]:
    """A registered gateway with labels set by a person. They survive what agents report:
    labels given at REST registration are the gateway's *reported* layer, which a native
    agent's description replaces."""
    gw = org.register(name=name or f"gw-{uuid.uuid4().hex[:6]}")
    resp = org.admin.patch(
        f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}, json={"labels": labels}
    )
    assert resp.status_code == 200, resp.text
    return gw


def template_with(org: Org, *bodies: str) -> str:
    created = org.admin.post(
        "/api/v1/configs", params={"org_id": org.id}, json={"name": f"t-{uuid.uuid4().hex[:8]}"}
    )
    assert created.status_code == 201, created.text
    config_id: str = created.json()["id"]
    for body in bodies:
        resp = org.admin.post(
            f"/api/v1/configs/{config_id}/versions",
            params={"org_id": org.id},
            json={"config_yaml": body},
        )
        assert resp.status_code == 201, resp.text
    return config_id


def deploy(org: Org, **body: Any) -> httpx.Response:
    return org.admin.post("/api/v1/deployments", params={"org_id": org.id}, json=body)


def deployment(org: Org, deployment_id: str) -> dict[str, Any]:
    resp = org.get(f"/api/v1/deployments/{deployment_id}")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def targets(org: Org, deployment_id: str) -> dict[str, dict[str, Any]]:
    resp = org.get(f"/api/v1/deployments/{deployment_id}/gateways", limit=500)
    assert resp.status_code == 200, resp.text
    return {t["gateway_id"]: t for t in resp.json()["items"]}
