"""``GET /api/v1/gateways/{id}/deployments``: the deployments that touched one gateway, newest
first, with that gateway's state in each; read-only, for viewers, scoped to the organisation."""

from __future__ import annotations

import httpx

from tests.support.api import Org, new_org

GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


def test_a_gateways_deployments_newest_first_with_its_state(
    org: Org, superuser: httpx.Client
) -> None:
    gw = org.register(name="touched", labels={"env": "prod"})
    untouched = org.register(name="untouched", labels={"env": "dev"})
    params = {"org_id": org.id}
    config = org.admin.post("/api/v1/configs", params=params, json={"name": "history"}).json()
    for body in (GOOD, GOOD.replace("grpc: {}", "http: {}")):
        resp = org.admin.post(
            f"/api/v1/configs/{config['id']}/versions", params=params, json={"config_yaml": body}
        )
        assert resp.status_code == 201, resp.text
    made = []
    for version, target in ((1, {"gateway_ids": [gw["id"]]}), (2, {"selector": "env=prod"})):
        resp = org.admin.post(
            "/api/v1/deployments",
            params=params,
            json={"config_id": config["id"], "version": version, "target": target},
        )
        assert resp.status_code == 201, resp.text
        made.append(resp.json()["id"])

    viewer = org.user("viewer")
    resp = viewer.get(f"/api/v1/gateways/{gw['id']}/deployments", params=params)
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert [i["deployment"]["id"] for i in page["items"]] == made[::-1]
    newest, older = page["items"]
    assert newest["deployment"]["version"] == 2 and newest["deployment"]["config_name"] == "history"
    assert (newest["state"], newest["batch"], newest["error_message"]) == ("sent", 1, None)
    assert older["state"] == "superseded"  # the newer deployment took the gateway over
    assert page["next_cursor"] is None

    # Paged: one at a time, the cursor leads to the older one.
    first = viewer.get(f"/api/v1/gateways/{gw['id']}/deployments", params={**params, "limit": 1})
    assert [i["deployment"]["id"] for i in first.json()["items"]] == [made[1]]
    second = viewer.get(
        f"/api/v1/gateways/{gw['id']}/deployments",
        params={**params, "limit": 1, "cursor": first.json()["next_cursor"]},
    )
    assert [i["deployment"]["id"] for i in second.json()["items"]] == [made[0]]
    assert second.json()["next_cursor"] is None

    resp = viewer.get(f"/api/v1/gateways/{untouched['id']}/deployments", params=params)
    assert resp.json() == {"items": [], "next_cursor": None}

    bad = viewer.get(f"/api/v1/gateways/{gw['id']}/deployments", params={**params, "cursor": "x"})
    assert bad.status_code == 400 and bad.json()["detail"] == "Invalid cursor"

    # Another organisation's gateway does not exist for this caller.
    other = new_org(org.server, superuser)
    resp = other.admin.get(f"/api/v1/gateways/{gw['id']}/deployments", params={"org_id": other.id})
    assert resp.status_code == 404 and resp.json()["detail"] == "Gateway not found"
