"""The in-process test layer: the real app on ``httpx.ASGITransport``, no server process.

Each test runs inside one database transaction that is rolled back afterwards, so tests are
isolated without creating anything per test, and fast: a request costs what the app costs. The
request's unit of work commits to a savepoint (``join_transaction_mode="create_savepoint"``),
exactly as it would commit for real. Use this layer for API logic (validation, permissions,
domain rules); keep live servers (``tests/conftest.py::server``) for what needs the wire, several
processes or background tasks (presence flushes, OpAMP sockets, rollouts over time).

Both databases: SQLite (a migrated file) and PostgreSQL (a migrated database of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from flowgate.core.migrate import upgrade
from flowgate.core.security import access_token
from flowgate.core.settings import Settings
from flowgate.core.uow import unit_of_work_factory
from flowgate.main import create_app
from flowgate.orgs import service as orgs
from flowgate.orgs.models import Role
from tests.conftest import database_for

SECRET = "in-process-" + uuid.uuid4().hex * 2


@dataclass
class InProcess:
    app: FastAPI
    engine: AsyncEngine
    settings: Settings


def _engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url)
    engine = create_async_engine(url)

    # pysqlite (and aiosqlite) handle BEGIN themselves, which breaks SAVEPOINT; let SQLAlchemy
    # emit it (the documented recipe), so nested transactions work.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture(scope="session")
def inprocess(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    tmp = tmp_path_factory.mktemp(f"inprocess-{backend}")
    url, pg_name = database_for(backend, tmp)
    settings = Settings(
        environment="test",
        data_dir=Path(tmp),
        database_url=url,
        secret_key=SECRET,
        public_url="http://test",
    )
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    engine = _engine(settings.resolved_database_url)
    yield InProcess(app, engine, settings)
    if pg_name:
        from tests.support.server import drop_pg_database

        drop_pg_database(pg_name)


@dataclass
class Api:
    """A client signed in as an admin of a fresh organisation, inside the test's transaction."""

    http: httpx.AsyncClient
    org_id: str
    admin_token: str

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        params = {"org_id": self.org_id, **kw.pop("params", {})}
        return await self.http.request(method, path, params=params, **kw)


@pytest.fixture
async def api(inprocess: InProcess) -> AsyncIterator[Api]:
    conn = await inprocess.engine.connect()
    trans = await conn.begin()
    maker = async_sessionmaker(
        bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    runtime = inprocess.app.state.runtime
    inprocess.app.state.unit_of_work = unit_of_work_factory(maker, runtime.bus.publish)
    async with maker() as session:
        org = await orgs.create_org(session, f"org-{uuid.uuid4().hex[:10]}")
        user = await orgs.create_user(
            session,
            f"admin-{uuid.uuid4().hex[:8]}@example.com",
            "password-123",
            org_id=org.id,
            role=Role.admin,
        )
        await session.commit()
        token = access_token(user.id, 60, inprocess.settings.signing_key)
        org_id = str(org.id)
    transport = httpx.ASGITransport(app=inprocess.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        try:
            yield Api(http, org_id, token)
        finally:
            inprocess.app.state.unit_of_work = runtime.unit_of_work
            await trans.rollback()
            await conn.close()
