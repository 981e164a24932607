"""API logic in process (see conftest): fast checks of rules that need no server process."""

from __future__ import annotations

import pytest

from tests.inprocess.conftest import Api

GOOD = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


@pytest.mark.parametrize("attempt", [1, 2])
async def test_each_test_runs_in_a_transaction_that_is_rolled_back(api: Api, attempt: int) -> None:
    # Emails are unique across organisations: the second run would be a 409 if the first
    # run's user had been kept.
    body = {"email": "rolled-back@example.com", "password": "password-123", "role": "viewer"}
    resp = await api.call("POST", "/api/v1/users", json=body)
    assert resp.status_code == 201, (attempt, resp.text)
    again = await api.call("POST", "/api/v1/users", json=body)
    assert again.status_code == 409


async def test_validation_answers_every_error_with_its_position(api: Api) -> None:
    ok = await api.call("POST", "/api/v1/configs/validate", json={"config_yaml": GOOD})
    assert ok.status_code == 200 and ok.json() == {"valid": True, "errors": []}
    bad = GOOD.replace("exporters: [debug]", "exporters: [nope]")
    resp = await api.call("POST", "/api/v1/configs/validate", json={"config_yaml": bad})
    assert resp.status_code == 422
    [error] = resp.json()["detail"]["errors"]
    assert (error["line"], "nope" in error["message"]) == (11, True)


async def test_versions_are_numbered_and_diffed(api: Api) -> None:
    created = await api.call("POST", "/api/v1/configs", json={"name": "edge"})
    cid = created.json()["id"]
    for body in (GOOD, GOOD.replace("grpc: {}", "http: {}")):
        resp = await api.call("POST", f"/api/v1/configs/{cid}/versions", json={"config_yaml": body})
        assert resp.status_code == 201, resp.text
    same = await api.call("POST", f"/api/v1/configs/{cid}/versions", json={"config_yaml": GOOD})
    assert same.status_code == 201  # back to v1's body is a change: version 3
    listed = await api.call("GET", f"/api/v1/configs/{cid}/versions")
    assert [v["version"] for v in listed.json()["items"]] == [3, 2, 1]
    diff = await api.call("GET", f"/api/v1/configs/{cid}/diff", params={"from": 1, "to": 2})
    assert "-      grpc: {}" in diff.json()["diff"] and "+      http: {}" in diff.json()["diff"]


async def test_deployment_requests_are_checked_before_anything_is_stored(api: Api) -> None:
    token = await api.call("POST", "/api/v1/registration-tokens", json={"name": "t"})
    gateway = await api.http.post(
        "/api/v1/gateways",
        json={"name": "gw", "instance_id": "in-process-1"},
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    assert gateway.status_code == 201, gateway.text
    created = await api.call("POST", "/api/v1/configs", json={"name": "empty"})
    cid = created.json()["id"]
    target = {"gateway_ids": [gateway.json()["id"]]}
    no_version = await api.call(
        "POST", "/api/v1/deployments", json={"config_id": cid, "target": target}
    )
    assert no_version.status_code == 409 and "no versions" in no_version.json()["detail"]
    await api.call("POST", f"/api/v1/configs/{cid}/versions", json={"config_yaml": GOOD})
    bad_strategy = await api.call(
        "POST",
        "/api/v1/deployments",
        json={"config_id": cid, "target": target, "strategy": {"type": "staged", "batches": []}},
    )
    assert bad_strategy.status_code == 422
    listed = await api.call("GET", "/api/v1/deployments")
    assert listed.json()["items"] == []
    ok = await api.call("POST", "/api/v1/deployments", json={"config_id": cid, "target": target})
    assert ok.status_code == 201, ok.text
    assert ok.json()["counts"]["sent"] == 1 and ok.json()["state"] == "rolling_out"
