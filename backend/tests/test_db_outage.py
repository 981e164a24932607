"""A database outage, made real: the server reaches PostgreSQL through a TCP proxy that the test
cuts (every connection reset, new ones refused) and restores.

While it lasts, every answer is either served from memory (200) or 503 + ``Retry-After`` with
``{"detail": "Database unavailable; retry later"}``, never a 500; every heartbeat that was
accepted reaches the database once it is back; the outage is logged once, not per request.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from flowgate.core.outage import is_unavailable
from flowgate.opamp.proto import opamp_pb2
from tests.conftest import IN_CI, database_for
from tests.support.api import Org, new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.server import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LiveServer,
    drop_pg_database,
    pg_available,
    pg_exec,
    pg_url,
)
from tests.support.tcpproxy import TcpProxy
from tests.support.ws_agent import WsAgent

UNAVAILABLE_BODY = {"detail": "Database unavailable; retry later"}
UNAVAILABLE = opamp_pb2.ServerErrorResponseType_Unavailable
PROTO = {"Content-Type": "application/x-protobuf"}
OPAMP_RETRY_AFTER = "7"
GATEWAYS = 100
BEAT_SECONDS = 1.0
#: The server caches a gateway's identity for 10 s after loading it; a heartbeat needs the
#: database only once that has passed. The cut starts soon after every gateway's first
#: heartbeat and lasts longer than the rest of the TTL, so heartbeats are served from memory
#: first and refused (503) for the last seconds of the cut.
CUT_AFTER_SECONDS = 2.5
CUT_SECONDS = 10.0
UNAVAILABLE_LINE = '"msg":"database unavailable"'
RECOVERED = re.compile(r"database available again after [\d.]+ s, (\d+) requests refused")


@dataclass
class Rig:
    server: LiveServer
    proxy: TcpProxy
    pg_name: str
    org: Org
    fleets: list[Fleet] = field(default_factory=list)

    def log_since(self, offset: int) -> str:
        return self.server.full_log()[offset:]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("outage")
    _, name = database_for("postgres", tmp)
    assert name is not None
    proxy = TcpProxy(5432).start()
    live = LiveServer(
        data_dir=tmp / "data",
        database_url=pg_url(name, proxy.port),
        extra_env={
            "FLOWGATE_OPAMP_RETRY_AFTER_SECONDS": OPAMP_RETRY_AFTER,
            "FLOWGATE_OPAMP_RETRY_JITTER": "0",
        },
    )
    try:
        live.start()
        yield Rig(live, proxy, name, new_org(live, superuser_client(live)))
    finally:
        live.stop()
        proxy.stop()
        drop_pg_database(name)


@pytest.fixture(autouse=True)
def _restored(rig: Rig) -> Iterator[None]:
    """A failing test must not leave the database cut, or a fleet running, for the next."""
    yield
    rig.proxy.restore()
    for fleet in rig.fleets:
        fleet.stop.set()


def stored_versions(pg_name: str, ids: list[str]) -> dict[str, str | None]:
    """``extra_metadata.version`` as stored, read past the proxy (straight from PostgreSQL)."""
    import asyncpg

    async def go() -> dict[str, str | None]:
        dsn = pg_url(pg_name).replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT id, extra_metadata FROM gateways WHERE id = ANY($1::uuid[])",
                [uuid.UUID(i) for i in ids],
            )
        finally:
            await conn.close()
        return {str(r["id"]): json.loads(r["extra_metadata"] or "{}").get("version") for r in rows}

    return asyncio.run(go())


def assert_unavailable(resp: httpx.Response, retry_after: str = "5") -> None:
    assert resp.status_code == 503, (resp.request.url.path, resp.status_code, resp.text)
    assert resp.headers.get("retry-after") == retry_after, resp.headers
    assert resp.json() == UNAVAILABLE_BODY


@dataclass
class Fleet:
    """REST gateways heartbeating in a thread of their own (own event loop), each sending
    ``version: hb-<n>`` and remembering every answer. The ``quiet`` ones stop when told to
    (during the cut), so their last accepted heartbeat is one the database never saw live."""

    server: LiveServer
    gateways: list[dict[str, Any]]
    #: Per gateway: (n, status, Retry-After, monotonic time of the answer).
    answers: dict[str, list[tuple[int, int, str | None, float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    first_round: threading.Event = field(default_factory=threading.Event)
    quiet: set[str] = field(default_factory=set)
    hush: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answers = {gw["id"]: [] for gw in self.gateways}
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()

    async def _main(self) -> None:
        # A new connection per heartbeat, as the gateway scripts' curl makes: a kept-alive
        # connection can be closed by the server's keep-alive timeout just as the next beat
        # is sent on it (a ReadError on a busy machine), which is the client's race, not a
        # request the server dropped.
        limits = httpx.Limits(max_connections=GATEWAYS, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30, limits=limits) as c:
            await asyncio.gather(*(self._beat(c, gw) for gw in self.gateways))

    async def _beat(self, client: httpx.AsyncClient, gw: dict[str, Any]) -> None:
        answers = self.answers[gw["id"]]
        n = 0
        while not self.stop.is_set():
            if gw["id"] in self.quiet and self.hush.is_set():
                return
            n += 1
            try:
                resp = await client.post(
                    f"/api/v1/opamp/heartbeat/{gw['instance_id']}",
                    json={"version": f"hb-{n}"},
                    headers={"Authorization": f"Bearer {gw['opamp_token']}"},
                )
            except httpx.HTTPError as exc:
                self.errors.append(f"{gw['id']} hb-{n}: {exc!r}")
            else:
                answers.append(
                    (n, resp.status_code, resp.headers.get("retry-after"), time.monotonic())
                )
                if resp.status_code not in (200, 503):
                    self.errors.append(f"{gw['id']} hb-{n}: {resp.status_code} {resp.text}")
            if all(self.answers.values()):
                self.first_round.set()
            await asyncio.sleep(BEAT_SECONDS)

    def last_accepted(self) -> dict[str, str]:
        return {
            gid: f"hb-{max(a[0] for a in answers if a[1] == 200)}"
            for gid, answers in self.answers.items()
        }

    def recovered_since(self, moment: float) -> bool:
        """Every gateway still beating got a 200 after ``moment`` for its latest heartbeat."""
        return all(
            a and a[-1][1] == 200 and a[-1][3] > moment
            for gid, a in self.answers.items()
            if gid not in self.quiet
        )

    def refused(self) -> list[tuple[int, int, str | None, float]]:
        return [a for answers in self.answers.values() for a in answers if a[1] == 503]


def opamp_poll(server: LiveServer, token: str, uid: bytes) -> httpx.Response:
    body = opamp_pb2.AgentToServer(instance_uid=uid, capabilities=1).SerializeToString()
    return httpx.post(
        server.url + "/v1/opamp",
        content=body,
        headers={**PROTO, "Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.mark.postgres
async def test_outage_answers_503_loses_nothing_and_is_logged_once(rig: Rig) -> None:
    server, org = rig.server, rig.org
    token = org.registration_token(max_uses=None)
    gateways = [org.register(token=token, name=f"gw-{i}") for i in range(GATEWAYS)]
    fresh_ws_gw, known_ws_gw, poller = (org.register(token=token) for _ in range(3))
    uncached = org.register(token=token)  # its identity is never loaded before the cut
    late_registration = org.registration_token(max_uses=None)
    status_of = gateways[0]["id"]

    # WebSocket agents: one known to this replica (state in memory), one connected but silent
    # (the server must load it from the database on its first message).
    known = await WsAgent(server.ws_url + "/v1/opamp", known_ws_gw["opamp_token"]).connect()
    assert not (await known.request(known.full_state())).HasField("error_response")
    fresh = await WsAgent(server.ws_url + "/v1/opamp", fresh_ws_gw["opamp_token"]).connect()

    offset = len(server.full_log())
    quiet = {gw["id"] for gw in gateways[::5]}
    fleet = Fleet(server, gateways, quiet=quiet).start()
    rig.fleets.append(fleet)
    assert await asyncio.to_thread(fleet.first_round.wait, 30)
    assert org.heartbeat(poller, {"version": "poller"}).status_code == 200  # caches identity
    await asyncio.sleep(CUT_AFTER_SECONDS)

    rig.proxy.cut()
    cut_at = time.monotonic()
    await asyncio.sleep(BEAT_SECONDS * 1.5)
    fleet.hush.set()  # the quiet fifth: last heartbeat accepted in memory while the DB is away
    refused_here = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        admin = {"Authorization": org.admin.headers["Authorization"]}
        q = {"org_id": org.id}
        # (b) what needs the database says so
        answers = [
            await c.get("/api/v1/gateways", params=q, headers=admin),
            await c.get(f"/api/v1/gateways/{status_of}/status", params=q, headers=admin),
            await c.post(
                "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            ),
            await c.post(
                "/api/v1/gateways",
                json={"name": "late", "instance_id": f"late-{uuid.uuid4().hex[:8]}"},
                headers={"Authorization": f"Bearer {late_registration}"},
            ),
            await c.post(
                "/api/v1/registration-tokens", params=q, json={"name": "during"}, headers=admin
            ),
            # the seed's REST heartbeat of a gateway whose identity is not cached
            await c.post(
                f"/api/v1/opamp/heartbeat/{uncached['instance_id']}",
                json={"version": "never"},
                headers={"Authorization": f"Bearer {uncached['opamp_token']}"},
            ),
        ]
    for resp in answers:
        assert_unavailable(resp)
    refused_here += len(answers)

    # (c) OpAMP: a poll whose agent must be loaded, and one whose credential must be checked,
    # answer 503 + Retry-After (the OpAMP setting) with a JSON detail
    polled = await asyncio.to_thread(opamp_poll, server, poller["opamp_token"], uuid.uuid4().bytes)
    assert_unavailable(polled, OPAMP_RETRY_AFTER)
    enrolling = await asyncio.to_thread(opamp_poll, server, late_registration, uuid.uuid4().bytes)
    assert_unavailable(enrolling, OPAMP_RETRY_AFTER)
    with pytest.raises(InvalidStatus) as upgrade:
        await WsAgent(server.ws_url + "/v1/opamp", uncached["opamp_token"]).connect()
    assert upgrade.value.response.status_code == 503
    assert upgrade.value.response.headers["Retry-After"] == OPAMP_RETRY_AFTER
    assert json.loads(upgrade.value.response.body) == UNAVAILABLE_BODY
    refused_here += 3
    # ... a known agent keeps working from memory; a silent one's first message is UNAVAILABLE
    assert not (await known.request(known.message())).HasField("error_response")
    deferred = await fresh.request(fresh.full_state())
    assert deferred.error_response.type == UNAVAILABLE, deferred
    assert deferred.error_response.retry_info.retry_after_nanoseconds == 7 * 10**9
    assert deferred.error_response.error_message == UNAVAILABLE_BODY["detail"]
    refused_here += 1

    await asyncio.sleep(CUT_SECONDS - (time.monotonic() - cut_at))
    # heartbeats reached the database path (identity TTL over) while it was cut
    assert rig.proxy.refused > 0
    assert fleet.refused(), "no heartbeat needed the database during the cut"
    rig.proxy.restore()

    # (a) the fleet recovers: every gateway's heartbeats are accepted again ...
    restored_at = time.monotonic()
    await asyncio.to_thread(wait_for, lambda: fleet.recovered_since(restored_at), 15)
    fleet.join()
    assert not fleet.errors, fleet.errors[:5]
    assert all(retry == "5" for _, _, retry, _ in fleet.refused())
    # ... and what was accepted, including while the database was away, is what is stored
    expected = fleet.last_accepted()
    ids = list(expected)
    for gid in quiet:
        last = fleet.answers[gid][-1]
        assert last[1] == 200 and cut_at < last[3] < restored_at, last

    def stored_is_last_accepted() -> bool:
        return stored_versions(rig.pg_name, ids) == expected

    await asyncio.to_thread(wait_for, stored_is_last_accepted, 10, 0.5)

    # the silent agent is served once the database is back; the known one never noticed
    assert not (await fresh.request(fresh.full_state())).HasField("error_response")
    assert not (await known.request(known.message())).HasField("error_response")
    await fresh.close()
    await known.close()

    # (d) one warning when it started, one line when it ended, counting every refusal
    await asyncio.to_thread(wait_for, lambda: RECOVERED.search(rig.log_since(offset)))
    log = rig.log_since(offset)
    assert log.count(UNAVAILABLE_LINE) == 1, log.count(UNAVAILABLE_LINE)
    recoveries = RECOVERED.findall(log)
    assert len(recoveries) == 1, recoveries
    assert int(recoveries[0]) == refused_here + len(fleet.refused())
    assert "unhandled error" not in log and "Exception in ASGI application" not in log
    assert "Traceback" not in log
    assert "presence flush failed" not in log  # the flusher reports through the tracker


@pytest.mark.postgres
def test_a_commit_that_cannot_reach_the_database_is_503(rig: Rig) -> None:
    """The route ran; its unit of work's COMMIT (in the session dependency's teardown) is the
    statement that finds the database gone. Still a 503, and nothing was written."""
    org = rig.org
    offset = len(rig.server.full_log())
    name = f"commit-{uuid.uuid4().hex[:8]}"
    rig.proxy.cut_on(b"COMMIT", after=name.encode())  # this request's COMMIT, no other
    try:
        created = org.admin.post(
            "/api/v1/registration-tokens", params={"org_id": org.id}, json={"name": name}
        )
        assert rig.proxy.triggered.is_set(), "the request never committed"
    finally:
        rig.proxy.restore()
    assert_unavailable(created)
    listing = org.get("/api/v1/registration-tokens")  # the database is back at once
    assert listing.status_code == 200, listing.text
    assert name not in listing.text
    log = rig.log_since(offset)
    assert log.count(UNAVAILABLE_LINE) == 1
    assert RECOVERED.findall(log) == ["1"]


# -- what counts as "unavailable" (real driver errors) ----------------------------------------


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def test_sqlite_lock_and_missing_file_are_unavailable_bugs_are_not(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    locked = _raised(lambda: other.execute("SELECT * FROM t").fetchall())
    assert "locked" in str(locked)
    holder.execute("ROLLBACK")
    assert is_unavailable(locked)
    assert is_unavailable(_raised(lambda: sqlite3.connect(tmp_path / "no" / "such.db")))
    assert not is_unavailable(_raised(lambda: other.execute("SELECT * FROM missing")))
    assert not is_unavailable(_raised(lambda: other.execute("INSERT INTO t (v) VALUES (NULL)")))
    assert not is_unavailable(ValueError("bad value"))
    other.close()
    holder.close()


@pytest.mark.postgres
def test_postgres_refused_and_gone_are_unavailable_bad_sql_is_not() -> None:
    from sqlalchemy import text

    from flowgate.core.db import create_engine

    if not pg_available():
        if IN_CI:
            pytest.fail("PostgreSQL is required when CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")

    async def errors() -> list[BaseException]:
        found: list[BaseException] = []
        nowhere = create_engine(pg_url("nowhere", port=1))
        try:
            async with nowhere.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            found.append(exc)
        await nowhere.dispose()
        engine = create_engine(pg_url("postgres"))
        async with engine.connect() as conn:
            try:
                await conn.execute(text("SELECT * FROM no_such_table"))
            except Exception as exc:
                found.append(exc)
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            pg_exec(f"SELECT pg_terminate_backend({pid})")
            try:
                await conn.execute(text("SELECT 1"))
            except Exception as exc:
                found.append(exc)
        await engine.dispose()
        return found

    refused, bad_sql, terminated = asyncio.run(errors())
    assert is_unavailable(refused), repr(refused)
    assert not is_unavailable(bad_sql), repr(bad_sql)
    assert is_unavailable(terminated), repr(terminated)
