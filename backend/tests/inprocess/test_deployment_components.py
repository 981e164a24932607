"""A deployment is checked against the components its gateways reported, and agents of one
build share one map: it is read once per hash, and a gateway that has sent only the hash so
far is checked against the map another gateway of the organisation sent with that hash."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from flowgate.gateways.models import Gateway
from tests.inprocess.conftest import Api, InProcess

CONFIG = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


def _components(*exporters: str) -> dict[str, Any]:
    return {
        "receivers": {"metadata": {}, "components": {"otlp": {"metadata": {}, "components": {}}}},
        "exporters": {
            "metadata": {},
            "components": {name: {"metadata": {}, "components": {}} for name in exporters},
        },
    }


async def _gateway(api: Api, name: str) -> str:
    made = await api.call("POST", "/api/v1/registration-tokens", json={"name": name})
    token = made.json()["token"]
    reply = await api.http.post(
        "/api/v1/gateways",
        json={"name": name, "instance_id": f"{name}-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


async def _reported(inprocess: InProcess, gateway_id: str, available: dict[str, Any]) -> None:
    async with inprocess.app.state.unit_of_work() as uow:
        await uow.session.execute(
            update(Gateway)
            .where(Gateway.id == uuid.UUID(gateway_id))
            # As the presence flush writes an agent's report: the state and its hash.
            .values(
                opamp_state={"format": 1, "available_components": available},
                components_hash=available["hash"],
            )
        )
        await uow.commit()


async def test_gateways_of_one_build_are_checked_against_its_map(
    api: Api, inprocess: InProcess
) -> None:
    full, hash_only, other_build = [
        await _gateway(api, name) for name in ("full", "hash-only", "other")
    ]
    # One build without the debug exporter: one gateway sent the map, one only its hash.
    await _reported(inprocess, full, {"hash": "aa" * 32, "components": _components("otlphttp")})
    await _reported(inprocess, hash_only, {"hash": "aa" * 32, "components": None})
    await _reported(inprocess, other_build, {"hash": "bb" * 32, "components": _components("debug")})
    cid = (await api.call("POST", "/api/v1/configs", json={"name": "c"})).json()["id"]
    added = await api.call("POST", f"/api/v1/configs/{cid}/versions", json={"config_yaml": CONFIG})
    assert added.status_code == 201, added.text

    async def deploy(*gateway_ids: str) -> Any:
        body = {"config_id": cid, "target": {"gateway_ids": list(gateway_ids)}}
        return await api.call("POST", "/api/v1/deployments", json=body)

    refused = await deploy(hash_only)
    assert refused.status_code == 422, refused.text
    assert "hash-only" in str(refused.json()["detail"]) and "debug" in str(refused.json())
    assert (await deploy(full, other_build)).status_code == 422
    assert (await deploy(other_build)).status_code == 201
