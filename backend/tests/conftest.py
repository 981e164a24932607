"""Shared fixtures: a live FlowGate server per database backend (SQLite and PostgreSQL).

Tests needing a server take ``server``; it is parametrised over both backends, so every such test
runs on both. PostgreSQL tests skip when it is unreachable, except under ``CI=true``, where that
is a failure. Each test gets its own organisation (``org``), so tests never see each other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import Org, new_org, superuser_client
from tests.support.server import (
    LiveServer,
    create_pg_database,
    drop_pg_database,
    pg_available,
)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgres"]


def database_for(backend: str, tmp: Path) -> tuple[str | None, str | None]:
    """(database url, postgres database name to drop) for a backend; skips or fails on PG."""
    if backend == "sqlite":
        return None, None
    if not pg_available():
        if IN_CI:
            pytest.fail("PostgreSQL is required when CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    name, url = create_pg_database()
    return url, name


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"server-{backend}")
    url, pg_name = database_for(backend, tmp)
    live = LiveServer(data_dir=tmp / "data", database_url=url)
    live.start()
    try:
        yield live
    finally:
        live.stop()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture(scope="session")
def superuser(server: LiveServer) -> Iterator[httpx.Client]:
    with superuser_client(server) as c:
        yield c


@pytest.fixture
def org(server: LiveServer, superuser: httpx.Client) -> Org:
    return new_org(server, superuser)


@pytest.fixture
def make_server(backend: str, tmp_path: Path) -> Iterator[type[LiveServer] | object]:
    """Factory for a private server (for restart tests): ``make_server(**extra_env)``;
    ``omit_env=("FLOWGATE_X", ...)`` removes variables the harness would otherwise set."""
    started: list[LiveServer] = []
    drops: list[str] = []

    def factory(omit_env: tuple[str, ...] = (), **extra_env: str) -> LiveServer:
        url, pg_name = database_for(backend, tmp_path)
        if pg_name:
            drops.append(pg_name)
        live = LiveServer(
            data_dir=tmp_path / f"data{len(started)}",
            database_url=url,
            extra_env=extra_env,
            omit_env=omit_env,
        )
        started.append(live)
        return live.start()

    yield factory
    for live in started:
        live.stop()
    for name in drops:
        drop_pg_database(name)
