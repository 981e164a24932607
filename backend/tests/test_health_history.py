"""Stored health, its history and the fleet series, on SQLite and PostgreSQL.

- Direct (the real writers against a real database): after random heartbeats, stops,
  disconnects and deactivations the stored health equals :func:`compute_health`, the maintained
  counts equal a COUNT, every gateway's history is one unbroken chain ending at its stored
  health, and every transition is published exactly once.
- The sweep ages a silent gateway healthy -> warning -> unhealthy with exactly one transition
  each, even with two sweepers (two engines, like two replicas) racing; it prunes old history.
- Live: two replicas on one database (PostgreSQL + Redis, and SQLite), a REST gateway that stops
  heartbeating, and the history, the list, the summary and the event stream that follow.
- The API: history pages, the fleet series against the transitions, bad input.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from flowgate.core.db import Database, utcnow
from flowgate.core.events import Event, GatewayHealthChanged
from flowgate.core.migrate import upgrade
from flowgate.core.uow import unit_of_work_factory
from flowgate.gateways import repository, service
from flowgate.gateways.health import compute_health
from flowgate.gateways.models import (
    Gateway,
    GatewayCountDelta,
    GatewayHealthTransition,
    GatewayStatus,
)
from flowgate.gateways.presence import Presence
from flowgate.gateways.sweep import HealthSweep
from flowgate.orgs.models import Organization
from tests.conftest import IN_CI, database_for
from tests.support.api import Org, new_org, superuser_client
from tests.support.db import query, update_row
from tests.support.polling import wait_for
from tests.support.server import LiveServer, create_pg_database, drop_pg_database, pg_available
from tests.support.sse import EventStream

TOKEN = "d" * 64


# -- direct: writers, sweep and triggers on a real database ----------------------------------


@dataclass
class Fleet:
    db: Database
    org_id: uuid.UUID
    ids: list[uuid.UUID]
    events: list[Event] = field(default_factory=list)

    def uow(self) -> Any:
        async def publish(events: list[Event]) -> None:
            self.events.extend(events)

        return unit_of_work_factory(self.db.sessionmaker, publish)

    def sweep(self, healthy: float = 60, warning: float = 300, days: float = 30) -> HealthSweep:
        return HealthSweep(self.uow(), 5.0, healthy, warning, days)


@pytest.fixture
async def fleet(backend: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    url, pg_name = database_for(backend, tmp_path)
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    async with db.sessionmaker() as session:
        org = Organization(name="o")
        session.add(org)
        await session.flush()
        gateways = [
            Gateway(org_id=org.id, instance_id=f"g{i:03d}", name=f"g{i:03d}", opamp_token=TOKEN)
            for i in range(120)
        ]
        session.add_all(gateways)
        await session.commit()
        fleet = Fleet(db, org.id, [g.id for g in gateways])
    try:
        yield fleet
    finally:
        await db.dispose()
        if pg_name:
            drop_pg_database(pg_name)


async def stored(fleet: Fleet) -> dict[uuid.UUID, tuple[GatewayStatus, datetime | None, str]]:
    async with fleet.db.sessionmaker() as session:
        rows = await session.execute(
            select(Gateway.id, Gateway.status, Gateway.last_seen, Gateway.health)
        )
        return {gid: (status, seen, health) for gid, status, seen, health in rows.all()}


async def assert_counts_match(fleet: Fleet) -> None:
    async with fleet.db.sessionmaker() as session:
        maintained = {(s.value, h): n for s, h, n in await repository.counts(session, fleet.org_id)}
        counted = await session.execute(
            select(Gateway.status, Gateway.health, func.count())
            .where(Gateway.org_id == fleet.org_id)
            .group_by(Gateway.status, Gateway.health)
        )
        assert maintained == {(GatewayStatus(s).value, h): n for s, h, n in counted.all()}


async def history(fleet: Fleet) -> dict[uuid.UUID, list[tuple[str | None, str, str | None]]]:
    chains: dict[uuid.UUID, list[tuple[str | None, str, str | None]]] = {}
    async with fleet.db.sessionmaker() as session:
        h = GatewayHealthTransition
        rows = await session.execute(
            select(h.gateway_id, h.from_health, h.to_health, h.reason).order_by(h.id)
        )
        for gid, frm, to, reason in rows.all():
            chains.setdefault(gid, []).append((frm, to, reason))
    return chains


async def test_stored_health_is_the_rule_after_heartbeats_stops_and_deactivations(
    fleet: Fleet,
) -> None:
    rnd = random.Random(11)
    presence = Presence(fleet.uow(), 60)
    sweep = fleet.sweep()
    deactivated: set[uuid.UUID] = set()
    for _ in range(6):
        now = utcnow()
        for gid in fleet.ids:
            if gid in deactivated:
                continue
            action = rnd.random()
            if action < 0.45:  # a fresh heartbeat
                presence.record(gid, TOKEN, last_seen=now - timedelta(seconds=rnd.uniform(0, 50)))
                presence.record(gid, TOKEN, status=GatewayStatus.active)
            elif action < 0.65:  # contact long ago (it stopped): warning or unhealthy
                age = rnd.choice([61, 70, 200, 299, 301, 400, 5000])
                presence.record(
                    gid,
                    TOKEN,
                    last_seen=now - timedelta(seconds=age),
                    status=GatewayStatus.active,
                )
            elif action < 0.75:  # the agent disconnected
                presence.record(
                    gid, TOKEN, last_seen=now - timedelta(seconds=5), status=GatewayStatus.inactive
                )
            # else: it said nothing this round
        before = utcnow()
        await presence.flush()
        after = utcnow()
        rows = await stored(fleet)
        for status, seen, health in rows.values():
            # The flush evaluated the rule at some moment in [before, after].
            early = compute_health(status, seen, before).status
            if early == compute_health(status, seen, after).status:
                assert health == early
        await assert_counts_match(fleet)
        for gid in rnd.sample([g for g in fleet.ids if g not in deactivated], 4):
            async with fleet.uow()() as uow:
                gateway = await repository.by_id(uow.session, gid)
                assert gateway is not None
                await service.deactivate(uow, gateway)
            deactivated.add(gid)
        result = await sweep.run_once(force=True)
        assert result is not None
        for gid, (status, seen, health) in (await stored(fleet)).items():
            assert health == compute_health(status, seen, result.at).status, gid
            if gid in deactivated:
                assert health == "offline"
        await assert_counts_match(fleet)

    # Every gateway's history is one chain from its creation to its stored health.
    rows = await stored(fleet)
    chains = await history(fleet)
    assert set(chains) == set(fleet.ids)
    for gid, chain in chains.items():
        assert chain[0][:2] == (None, "unhealthy") and chain[0][2] == "registered"
        for earlier, later in itertools.pairwise(chain):
            assert later[0] == earlier[1] != later[1]
        assert chain[-1][1] == rows[gid][2]
    # ... and every transition after the creation was published exactly once.
    published = [
        (c.gateway_id, c.from_health, c.to_health, c.reason)
        for e in fleet.events
        if isinstance(e, GatewayHealthChanged)
        for c in e.changes
    ]
    recorded = [(gid, *t) for gid, chain in chains.items() for t in chain[1:]]
    assert sorted(published, key=str) == sorted(recorded, key=str)
    reasons = {t[2] for chain in chains.values() for t in chain}
    assert {"connected", "disconnected", "deactivated"} <= reasons


async def test_a_silent_gateway_ages_once_per_step_with_two_sweepers(
    fleet: Fleet, backend: str, tmp_path: Path
) -> None:
    """Two sweepers on two engines (two replicas) racing every 0.2 s: one sweep per interval,
    and exactly one transition to warning and one to unhealthy."""
    gid = fleet.ids[0]
    presence = Presence(fleet.uow(), 60, healthy_seconds=1, warning_seconds=2)
    presence.record(gid, TOKEN, last_seen=utcnow(), status=GatewayStatus.active)
    await presence.flush()
    other = Database(fleet.db.url)

    async def publish(events: list[Event]) -> None:
        fleet.events.extend(events)

    try:
        a = HealthSweep(fleet.uow(), 0.3, 1, 2, 30)
        b = HealthSweep(unit_of_work_factory(other.sessionmaker, publish), 0.3, 1, 2, 30)
        ran: list[bool] = []
        deadline = asyncio.get_running_loop().time() + 3.5
        while asyncio.get_running_loop().time() < deadline:
            results = await asyncio.gather(a.run_once(), b.run_once())
            ran += [r is not None for r in results]
            assert sum(r is not None for r in results) <= 1  # never both at once
            await asyncio.sleep(0.1)
        # About one sweep per 0.3 s interval over 3.5 s, never one per call.
        assert 6 <= sum(ran) <= 13, sum(ran)
    finally:
        await other.dispose()
    chain = (await history(fleet))[gid]
    assert chain == [
        (None, "unhealthy", "registered"),
        ("unhealthy", "healthy", "connected"),
        ("healthy", "warning", "silent"),
        ("warning", "unhealthy", "silent"),
    ]
    silent = [
        (c.from_health, c.to_health)
        for e in fleet.events
        if isinstance(e, GatewayHealthChanged)
        for c in e.changes
        if c.reason == "silent" and c.gateway_id == gid
    ]
    assert silent == [("healthy", "warning"), ("warning", "unhealthy")]
    # The other 119 never heartbeated: unhealthy since creation, nothing to age.
    assert all(len(c) == 1 for g, c in (await history(fleet)).items() if g != gid)
    await assert_counts_match(fleet)


async def test_the_sweep_reconciles_rows_written_around_the_writers(fleet: Fleet) -> None:
    now = utcnow()
    async with fleet.db.sessionmaker() as session:
        await session.execute(
            update(Gateway)
            .where(Gateway.id.in_(fleet.ids[:10]))
            .values(status=GatewayStatus.active, last_seen=now)
        )
        await session.commit()
    result = await fleet.sweep().run_once(force=True)
    assert result is not None
    assert {(c.gateway_id, c.to_health, c.reason) for c in result.changes} == {
        (gid, "healthy", "reconciled") for gid in fleet.ids[:10]
    }
    await assert_counts_match(fleet)


async def test_retention_prunes_old_transitions(fleet: Fleet) -> None:
    old, recent = fleet.ids[:5], fleet.ids[5:]
    async with fleet.db.sessionmaker() as session:
        await session.execute(
            update(GatewayHealthTransition)
            .where(GatewayHealthTransition.gateway_id.in_(old))
            .values(at=utcnow() - timedelta(days=31))
        )
        await session.commit()
    result = await fleet.sweep(days=30).run_once(force=True)
    assert result is not None and result.pruned == 5
    chains = await history(fleet)
    assert set(chains) == set(recent)
    assert await fleet.sweep(days=30).run_once(force=True) is not None  # nothing left to prune


async def test_a_second_sweep_within_the_interval_does_not_run(fleet: Fleet) -> None:
    first, second = fleet.sweep(), fleet.sweep()
    assert await first.run_once() is not None
    assert await second.run_once() is None
    assert await first.run_once() is None


# -- live: two replicas ----------------------------------------------------------------------


def redis_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


FAST_HEALTH = {
    "FLOWGATE_HEALTH_SWEEP_SECONDS": "0.5",
    "FLOWGATE_HEALTH_HEALTHY_SECONDS": "2",
    "FLOWGATE_HEALTH_WARNING_SECONDS": "4",
}


@pytest.fixture
def two_replicas(backend: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    # Several servers on one database need Redis (the server refuses to start without it).
    if not redis_available() or (backend == "postgres" and not pg_available()):
        if IN_CI:
            pytest.fail("PostgreSQL and Redis are required when CI=true")
        pytest.skip("needs Redis (and PostgreSQL) on 127.0.0.1")
    env = {**FAST_HEALTH, "FLOWGATE_REDIS_URL": "redis://127.0.0.1:6379/0"}
    pg_name = None
    if backend == "postgres":
        pg_name, url = create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    secret = uuid.uuid4().hex * 2
    a = LiveServer(data_dir=tmp_path / "a", database_url=url, extra_env=env, secret_key=secret)
    b = LiveServer(data_dir=tmp_path / "b", database_url=url, extra_env=env, secret_key=secret)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        if pg_name:
            drop_pg_database(pg_name)


def transitions(org: Org, gateway_id: str) -> list[tuple[str | None, str, str | None]]:
    resp = org.get(f"/api/v1/gateways/{gateway_id}/health/history")
    assert resp.status_code == 200, resp.text
    return [(t["from"], t["to"], t["reason"]) for t in resp.json()["items"]]


def test_a_gateway_that_stops_heartbeating_changes_health_once_per_step(
    two_replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two_replicas
    with superuser_client(a) as su:
        org = new_org(a, su)
        gw = org.register(name="quiet")
        auth = {"Authorization": str(org.admin.headers["Authorization"])}
        with EventStream.open(a, org.id, headers=auth) as s:
            assert s.next().retry == "3000"
            # It talks to replica B once, then stops.
            on_b = Org(server=b, id=org.id, name=org.name, admin=org.admin)
            assert on_b.heartbeat(gw).status_code == 200
            wait_for(lambda: transitions(org, gw["id"])[-1][1] == "unhealthy", timeout=15)
            # Several more sweeps on both replicas change nothing.
            time.sleep(2)
            assert transitions(org, gw["id"]) == [
                (None, "unhealthy", "registered"),
                ("unhealthy", "healthy", "connected"),
                ("healthy", "warning", "silent"),
                ("warning", "unhealthy", "silent"),
            ]
            page = org.get("/api/v1/gateways", health="unhealthy").json()
            assert [i["name"] for i in page["items"]] == ["quiet"]
            assert page["items"][0]["health"] == {"status": "unhealthy", "health_score": 20}
            assert page["summary"]["by_health"]["unhealthy"] == 1
            assert page["summary"]["by_status"]["active"] == 1
            # With Redis, a stream on A sees the transitions whichever replica made them.
            warning = s.next("gateway.health", gateway_id=gw["id"], to="warning")
            assert warning.json["from"] == "healthy" and warning.json["reason"] == "silent"
            assert warning.json["health_score"] == 50
            status = s.next("gateway.status", gateway_id=gw["id"], health="warning")
            assert status.json["status"] == "active"
            s.next("gateway.health", gateway_id=gw["id"], to="unhealthy")
            frames = [f for f in s.seen if f.event == "gateway.health"]
            assert [f.json["to"] for f in frames] == ["healthy", "warning", "unhealthy"]


# -- the API ---------------------------------------------------------------------------------


def expected_series(
    org: Org, gateway_ids: list[str], since: datetime, step: int, body: dict[str, Any]
) -> list[dict[str, int]]:
    """Each bucket's counts recomputed from the per-gateway transitions."""
    chains = {}
    for gid in gateway_ids:
        items = org.get(f"/api/v1/gateways/{gid}/health/history").json()["items"]
        chains[gid] = [(datetime.fromisoformat(t["at"]), t["to"]) for t in items]
    out = []
    for k in range(len(body["points"])):
        limit = since + timedelta(seconds=(k + 1) * step)  # exclusive end of bucket k
        counts = dict.fromkeys(("healthy", "warning", "unhealthy", "offline"), 0)
        for chain in chains.values():
            states = [to for at, to in chain if at < limit or k == len(body["points"]) - 1]
            if states:
                counts[states[-1]] += 1
        out.append(counts)
    return out


def test_history_pages_and_the_fleet_series_match_the_transitions(org: Org) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    gws = [org.register(name=f"s{i}") for i in range(4)]
    for gw in gws[:3]:
        assert org.heartbeat(gw).status_code == 200
    resp = org.admin.post(f"/api/v1/gateways/{gws[0]['id']}/deactivate", params={"org_id": org.id})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: transitions(org, gws[0]["id"])[-1][1] == "offline")

    assert transitions(org, gws[0]["id"]) == [
        (None, "unhealthy", "registered"),
        ("unhealthy", "healthy", "connected"),
        ("healthy", "offline", "deactivated"),
    ]
    # Keyset pages of one.
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = org.get(f"/api/v1/gateways/{gws[0]['id']}/health/history", **params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [t["to"] for t in seen] == ["unhealthy", "healthy", "offline"]
    later = org.get(f"/api/v1/gateways/{gws[0]['id']}/health/history", since=seen[1]["at"]).json()[
        "items"
    ]
    assert [t["to"] for t in later] == ["healthy", "offline"]

    body = org.get("/api/v1/fleet/health-history", since=since.isoformat(), step="1s").json()
    assert body["step_seconds"] == 1 and body["points"]
    last = body["points"][-1]
    summary = org.get("/api/v1/gateways").json()["summary"]["by_health"]
    assert {h: last[h] for h in summary} == summary
    assert last["total"] == 4
    got = [
        {h: p[h] for h in ("healthy", "warning", "unhealthy", "offline")} for p in body["points"]
    ]
    assert got == expected_series(org, [g["id"] for g in gws], since, 1, body)
    assert sum(p["transitions"] for p in body["points"]) == 4 + 3 + 1  # created, up, down
    first = body["points"][0]
    assert datetime.fromisoformat(first["start"]) == since


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2999-01-01T00:00:00Z"}, "future"),
        ({"since": "2000-01-01T00:00:00Z"}, "FLOWGATE_HEALTH_HISTORY_DAYS"),
        ({"step": "5 minutes"}, "step"),
        ({"step": "0"}, "step"),
        ({"step": "1s"}, "at most 1000"),
    ],
)
def test_bad_fleet_history_queries_are_422(org: Org, params: dict[str, str], message: str) -> None:
    resp = org.get("/api/v1/fleet/health-history", **params)
    assert resp.status_code == 422, resp.text
    assert message in str(resp.json()["detail"])


def test_history_is_scoped_to_the_organisation(org: Org, superuser: httpx.Client) -> None:
    gw = org.register()
    other = new_org(org.server, superuser)
    resp = other.get(f"/api/v1/gateways/{gw['id']}/health/history")
    assert resp.status_code == 404, resp.text
    assert org.get(f"/api/v1/gateways/{gw['id']}/health/history", since="nope").status_code == 422
    assert org.get(f"/api/v1/gateways/{gw['id']}/health/history", cursor="!!").status_code == 400
    body = other.get("/api/v1/fleet/health-history").json()
    assert body["points"][-1]["total"] == 0


def test_the_sweep_corrects_a_row_written_straight_into_the_database(org: Org) -> None:
    """A row changed around the writers (an operator's SQL) is put right by the next sweep."""
    gw = org.register(name="patched")
    update_row(org.server, "gateways", gw["id"], status="error")
    wait_for(lambda: transitions(org, gw["id"])[-1][1:] == ("offline", "reconciled"), timeout=15)
    rows = query(org.server, "SELECT health FROM gateways WHERE name = ?", "patched")
    assert rows == [("offline",)]


async def test_a_mass_silence_is_swept_in_chunks_each_transition_once(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flowgate.gateways import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "CHUNK", 7)
    presence = Presence(fleet.uow(), 60, healthy_seconds=1, warning_seconds=100)
    for gid in fleet.ids:
        presence.record(gid, TOKEN, last_seen=utcnow(), status=GatewayStatus.active)
    await presence.flush()
    await asyncio.sleep(1.2)  # the whole fleet goes quiet past the healthy threshold
    fleet.events.clear()
    result = await fleet.sweep(healthy=1, warning=100).run_once(force=True)
    assert result is not None
    assert sorted(c.gateway_id for c in result.changes) == sorted(fleet.ids)
    assert {(c.from_health, c.to_health, c.reason) for c in result.changes} == {
        ("healthy", "warning", "silent")
    }
    batches = [e for e in fleet.events if isinstance(e, GatewayHealthChanged)]
    assert len(batches) == -(-len(fleet.ids) // 7)  # one event per chunk's commit
    assert sum(len(e.changes) for e in batches) == len(fleet.ids)
    await assert_counts_match(fleet)
    # The run folded its own deltas: counts read a few rows, not two per transition.
    async with fleet.db.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(GatewayCountDelta)) == 0


def test_name_search_follows_renames_and_deletions(org: Org) -> None:
    """Name search reads gateway_names (copied by a trigger): a rename is found by its new name
    at once, a deleted gateway is gone."""
    gw = org.register(name="alpha-one")
    org.register(name="beta-two")
    assert [i["name"] for i in org.get("/api/v1/gateways", name="ALPHA").json()["items"]] == [
        "alpha-one"
    ]
    resp = org.admin.patch(
        f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}, json={"name": "gamma-one"}
    )
    assert resp.status_code == 200, resp.text
    assert org.get("/api/v1/gateways", name="alpha").json()["items"] == []
    assert [i["name"] for i in org.get("/api/v1/gateways", name="-one").json()["items"]] == [
        "gamma-one"
    ]
    resp = org.admin.delete(f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id})
    assert resp.status_code == 204, resp.text
    assert org.get("/api/v1/gateways", name="one").json()["items"] == []
    assert query(org.server, "SELECT name FROM gateway_names WHERE name = ?", "gamma-one") == []
