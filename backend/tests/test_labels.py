"""Gateway labels from every source, and label selectors on the list and the count, against a
live server on SQLite and PostgreSQL (plus the migration's backfill of existing labels)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2
from tests.conftest import database_for
from tests.support.api import Org, anonymous, new_org
from tests.support.polling import wait_for
from tests.support.server import LiveServer, drop_pg_database
from tests.support.ws_agent import WsAgent


def labels_of(org: Org, gateway_id: str) -> dict[str, str]:
    resp = org.get(f"/api/v1/gateways/{gateway_id}")
    assert resp.status_code == 200, resp.text
    labels: dict[str, str] = resp.json()["labels"]
    return labels


def patch_labels(org: Org, gateway_id: str, labels: dict[str, Any]) -> httpx.Response:
    return org.admin.patch(
        f"/api/v1/gateways/{gateway_id}", params={"org_id": org.id}, json={"labels": labels}
    )


def names(org: Org, selector: str, **params: Any) -> list[str]:
    resp = org.get("/api/v1/gateways", selector=selector, limit=500, **params)
    assert resp.status_code == 200, resp.text
    return [g["name"] for g in resp.json()["items"]]


def count(org: Org, selector: str | None) -> int:
    resp = org.get("/api/v1/gateways/count", **({"selector": selector} if selector else {}))
    assert resp.status_code == 200, resp.text
    n: int = resp.json()["count"]
    return n


# -- sources ------------------------------------------------------------------------------------


def test_registration_labels_merge_metadata_labels_top_level_wins(org: Org) -> None:
    gw = org.register(
        labels={"env": "prod", "tier": "edge"},
        metadata={"version": "1.0", "labels": {"env": "dev", "region": "eu-west"}},
    )
    assert labels_of(org, gw["id"]) == {"env": "prod", "region": "eu-west", "tier": "edge"}
    assert count(org, "env=prod,region=eu-west,tier=edge") == 1
    # A re-registration replaces what the gateway reported; one without labels keeps them.
    org.register(instance_id=gw["instance_id"], labels={"env": "staging"})
    assert labels_of(org, gw["id"]) == {"env": "staging"}
    org.register(instance_id=gw["instance_id"])
    assert labels_of(org, gw["id"]) == {"env": "staging"}
    assert count(org, "env=staging") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"labels": {"bad key": "v"}},
        {"labels": {"env": "-prod"}},
        {"labels": {"Upper.example.com/x": "v"}},
        {"labels": {"k": "v" * 64}},
        {"metadata": {"labels": {"env": "not valid"}}},
        {"metadata": {"labels": ["env"]}},
        {
            "labels": {f"k{i}": "v" for i in range(150)},
            "metadata": {"labels": {f"m{i}": "v" for i in range(60)}},
        },
    ],
)
def test_invalid_registration_labels_are_422(org: Org, body: dict[str, Any]) -> None:
    resp = anonymous(org.server).post(
        "/api/v1/gateways",
        json={"name": "gw", "instance_id": f"gw-{uuid.uuid4().hex[:8]}", **body},
        headers={"Authorization": f"Bearer {org.registration_token()}"},
    )
    assert resp.status_code == 422, resp.text
    assert "label" in resp.json()["detail"]


def test_patch_replaces_and_wins_over_the_agent(org: Org) -> None:
    gw = org.register(labels={"env": "dev", "zone": "a"})
    resp = patch_labels(org, gw["id"], {"env": "prod", "team": "payments"})
    assert resp.status_code == 200, resp.text
    # Exactly the body: the agent's "zone" is hidden, its "env" overridden.
    assert resp.json()["labels"] == {"env": "prod", "team": "payments"}
    assert (count(org, "zone"), count(org, "env=prod,team=payments")) == (0, 1)
    # The gateway reports again: people's keys stand, a key it never reported before shows.
    org.register(instance_id=gw["instance_id"], labels={"env": "qa", "zone": "b", "rack": "r7"})
    assert labels_of(org, gw["id"]) == {"env": "prod", "rack": "r7", "team": "payments"}
    assert (count(org, "env=qa"), count(org, "rack=r7")) == (0, 1)
    # A second PATCH replaces the first.
    assert patch_labels(org, gw["id"], {"tier": "core"}).json()["labels"] == {"tier": "core"}
    assert labels_of(org, gw["id"]) == {"tier": "core"}
    assert (count(org, "team"), count(org, "tier=core"), count(org, "rack")) == (0, 1, 0)
    for bad in ({"a b": "c"}, {"k": "v v"}, {"x/y/z": "1"}, {"k": 1}):
        resp = patch_labels(org, gw["id"], bad)
        assert resp.status_code == 422, (bad, resp.text)
    assert labels_of(org, gw["id"]) == {"tier": "core"}


def _description(version: str, attributes: dict[str, str]) -> opamp_pb2.AgentDescription:
    def kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
        return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))

    return opamp_pb2.AgentDescription(
        identifying_attributes=[
            kv("service.name", "io.opentelemetry.collector"),
            kv("service.version", version),
        ],
        non_identifying_attributes=[kv(k, v) for k, v in attributes.items()],
    )


async def test_opamp_agent_labels_from_non_identifying_attributes(org: Org) -> None:
    gw = org.register(name="opamp-labels")
    async with WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        reply = await agent.request(
            agent.message(
                agent_description=_description(
                    "1.0",
                    {
                        "host.name": "h1",
                        "flowgate.label.env": "prod",
                        "flowgate.label.example.com/rack": "r1",
                        "flowgate.label.bad key": "ignored",
                        "flowgate.label.region": "not valid!",
                    },
                )
            )
        )
        assert not reply.HasField("error_response"), reply  # invalid ones are only ignored
        wait_for(lambda: labels_of(org, gw["id"]) == {"env": "prod", "example.com/rack": "r1"})
        assert names(org, "example.com/rack=r1") == ["opamp-labels"]
        # A changed description replaces the agent's labels.
        await agent.request(
            agent.message(
                agent_description=_description(
                    "1.1", {"flowgate.label.env": "staging", "flowgate.label.tier": "edge"}
                )
            )
        )
        wait_for(lambda: labels_of(org, gw["id"]) == {"env": "staging", "tier": "edge"})
        assert (count(org, "env=staging,tier=edge"), count(org, "example.com/rack")) == (1, 0)
        # People win over the agent, also after its next report.
        assert patch_labels(org, gw["id"], {"env": "prod"}).status_code == 200
        await agent.request(
            agent.message(
                agent_description=_description(
                    "1.2", {"flowgate.label.env": "dev", "flowgate.label.shard": "s2"}
                )
            )
        )
        wait_for(lambda: labels_of(org, gw["id"]) == {"env": "prod", "shard": "s2"})
        assert (count(org, "env=dev"), count(org, "env=prod,shard=s2")) == (0, 1)


# -- selectors on the list and the count --------------------------------------------------------

FLEET = {
    "a-prod-eu": {"env": "prod", "region": "eu", "tier": "edge"},
    "b-prod-us": {"env": "prod", "region": "us"},
    "c-dev-eu": {"env": "dev", "region": "eu", "tier": "core"},
    "d-canary": {"env": "prod", "region": "us", "canary": "true", "tier": "edge"},
    "e-bare": {},
    "f-empty-env": {"env": ""},
}


@pytest.fixture
def fleet(org: Org) -> Org:
    token = org.registration_token(max_uses=None)
    for name, labels in FLEET.items():
        org.register(token=token, name=name, labels=labels)
    return org


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", ["a-prod-eu", "b-prod-us", "d-canary"]),
        ("env==prod", ["a-prod-eu", "b-prod-us", "d-canary"]),
        ("env!=prod", ["c-dev-eu", "e-bare", "f-empty-env"]),
        ("env=", ["f-empty-env"]),
        ("region in (eu, us)", ["a-prod-eu", "b-prod-us", "c-dev-eu", "d-canary"]),
        ("region in (eu)", ["a-prod-eu", "c-dev-eu"]),
        ("region notin (eu)", ["b-prod-us", "d-canary", "e-bare", "f-empty-env"]),
        ("tier", ["a-prod-eu", "c-dev-eu", "d-canary"]),
        ("!tier", ["b-prod-us", "e-bare", "f-empty-env"]),
        ("env=prod,region!=eu,tier", ["d-canary"]),
        ("env=prod,!canary", ["a-prod-eu", "b-prod-us"]),
        ("!env,!tier", ["e-bare"]),
        ("env notin (prod,dev),!region", ["e-bare", "f-empty-env"]),
        ("nosuchkey", []),
        ("", [*FLEET]),
    ],
)
def test_selector_filters_list_and_count(fleet: Org, selector: str, expected: list[str]) -> None:
    assert names(fleet, selector) == expected
    assert count(fleet, selector) == len(expected)


def test_selector_combines_with_other_filters_and_the_cursor(fleet: Org) -> None:
    assert names(fleet, "env=prod", name="prod") == ["a-prod-eu", "b-prod-us"]
    assert names(fleet, "env=prod", status="registered") == ["a-prod-eu", "b-prod-us", "d-canary"]
    assert names(fleet, "env=prod", status="active") == []
    pages, cursor = [], None
    while True:
        params = {"selector": "region", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = fleet.get("/api/v1/gateways", **params).json()
        pages.append([g["name"] for g in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [["a-prod-eu", "b-prod-us"], ["c-dev-eu", "d-canary"]]
    # The summary still counts the whole fleet.
    assert fleet.get("/api/v1/gateways", selector="tier").json()["summary"]["total"] == len(FLEET)
    assert count(fleet, None) == len(FLEET)


@pytest.mark.parametrize(
    ("selector", "position"),
    [("env=prod,", 9), ("env in ()", 8), ("env >= 1", 4), ("bad key", 4), ("env=a\x00", 4)],
)
@pytest.mark.parametrize("path", ["/api/v1/gateways", "/api/v1/gateways/count"])
def test_bad_selector_is_422_naming_the_position(
    org: Org, path: str, selector: str, position: int
) -> None:
    resp = org.get(path, selector=selector)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail.startswith("Invalid selector") and f"position {position}" in detail, detail
    too_long = org.get(path, selector="a" * 4097)
    assert too_long.status_code == 422, too_long.text


def test_another_orgs_gateways_never_match(
    server: LiveServer, superuser: httpx.Client, fleet: Org
) -> None:
    other = new_org(server, superuser)
    other.register(name="z-other-prod", labels={"env": "prod", "tier": "edge"})
    other.register(name="z-other-bare")
    for selector in ("env=prod", "tier", "!canary", "env!=dev", "region notin (eu)", ""):
        assert not [n for n in names(fleet, selector) if n.startswith("z-other")], selector
    assert count(fleet, "env=prod") == 3
    assert count(fleet, "!canary") == len(FLEET) - 1
    assert count(other, "env=prod") == 1
    assert count(other, "!canary") == 2
    assert names(other, "tier") == ["z-other-prod"]


def test_count_is_for_viewers_of_the_org(server: LiveServer, fleet: Org) -> None:
    viewer = fleet.user("viewer")
    resp = viewer.get("/api/v1/gateways/count", params={"org_id": fleet.id, "selector": "tier"})
    assert (resp.status_code, resp.json()) == (200, {"count": 3})
    resp = anonymous(server).get("/api/v1/gateways/count", params={"selector": "tier"})
    assert resp.status_code == 401, resp.text


def test_deleting_a_gateway_removes_it_from_selectors(fleet: Org) -> None:
    items = fleet.get("/api/v1/gateways").json()["items"]
    gid = next(g["id"] for g in items if g["name"] == "d-canary")
    resp = fleet.admin.delete(f"/api/v1/gateways/{gid}", params={"org_id": fleet.id})
    assert resp.status_code == 204, resp.text
    assert (count(fleet, "canary"), count(fleet, "!canary")) == (0, len(FLEET) - 1)


# -- the migration's backfill --------------------------------------------------------------------


def test_migration_backfills_labels(backend: str, tmp_path: Path) -> None:
    """Existing labels stay as they are and become selectable: a REST gateway's as its agent
    layer (a re-registration replaces them, as before), any other's as people's."""
    from flowgate.core.migrate import upgrade

    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    try:
        upgrade(url, "0004")
        org, rest, opamp = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        rows = [
            (rest, "rest", {"env": "prod", "tier": "edge"}),
            (opamp, "opamp-ws", {"env": "dev"}),
            (uuid.uuid4(), "rest", {}),
        ]
        asyncio.run(_insert_old_rows(url, org, rows))
        upgrade(url)
        layers, label_rows = asyncio.run(_read_new_rows(url))
        assert layers[rest] == ({"env": "prod", "tier": "edge"},) * 2 + ({},)
        assert layers[opamp] == ({"env": "dev"}, {}, {"env": "dev"})
        assert sorted(label_rows) == sorted(
            [(rest, org, "env", "prod"), (rest, org, "tier", "edge"), (opamp, org, "env", "dev")]
        )
    finally:
        if pg_name:
            drop_pg_database(pg_name)


async def _insert_old_rows(
    url: str, org: uuid.UUID, rows: list[tuple[uuid.UUID, str, dict[str, str]]]
) -> None:
    from sqlalchemy import text

    from flowgate.core.db import create_engine, utcnow

    engine = create_engine(url)
    sqlite = url.startswith("sqlite")
    labels_param = ":labels" if sqlite else "CAST(:labels AS jsonb)"

    def ident(value: uuid.UUID) -> Any:
        return value.hex if sqlite else value

    def stamp() -> Any:
        now = utcnow()
        return now.replace(tzinfo=None).isoformat(" ") if sqlite else now

    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO organizations (id, name, created_at) VALUES (:id, 'o', :t)"),
            {"id": ident(org), "t": stamp()},
        )
        for i, (gid, transport, labels) in enumerate(rows):
            await conn.execute(
                text(
                    "INSERT INTO gateways (id, instance_id, org_id, name, status, transport,"
                    " extra_metadata, labels, created_at, updated_at) VALUES (:id, :iid, :org,"
                    f" 'g', 'registered', :tr, '{{}}', {labels_param}, :t, :t)"
                ),
                {
                    "id": ident(gid),
                    "iid": f"i{i}",
                    "org": ident(org),
                    "tr": transport,
                    "labels": json.dumps(labels),
                    "t": stamp(),
                },
            )
    await engine.dispose()


async def _read_new_rows(
    url: str,
) -> tuple[dict[uuid.UUID, tuple[Any, Any, Any]], list[tuple[uuid.UUID, uuid.UUID, str, str]]]:
    from sqlalchemy import select

    from flowgate.core.db import create_engine
    from flowgate.gateways.models import Gateway, GatewayLabel

    engine = create_engine(url)
    async with engine.connect() as conn:
        layers = {
            gid: (labels, agent, manual)
            for gid, labels, agent, manual in (
                await conn.execute(
                    select(Gateway.id, Gateway.labels, Gateway.agent_labels, Gateway.manual_labels)
                )
            ).all()
        }
        label_rows = [
            (r[0], r[1], r[2], r[3])
            for r in (
                await conn.execute(
                    select(
                        GatewayLabel.gateway_id,
                        GatewayLabel.org_id,
                        GatewayLabel.key,
                        GatewayLabel.value,
                    )
                )
            ).all()
        ]
    await engine.dispose()
    return layers, label_rows
