"""Own-metrics ingestion while PostgreSQL is unreachable (a real TCP proxy cut): an export
whose token must be checked against the database is refused with 503 + Retry-After; once the
database is back the same export is accepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import database_for
from tests.support.api import new_org, superuser_client
from tests.support.server import LiveServer, drop_pg_database, pg_url
from tests.support.tcpproxy import TcpProxy
from tests.test_own_metrics import PROTOBUF, collector_export


@pytest.fixture
def cut_server(tmp_path: Path) -> Iterator[tuple[LiveServer, TcpProxy]]:
    _, name = database_for("postgres", tmp_path)
    assert name is not None
    proxy = TcpProxy(5432).start()
    live = LiveServer(
        data_dir=tmp_path / "data",
        database_url=pg_url(name, proxy.port),
        extra_env={"FLOWGATE_OPAMP_RETRY_AFTER_SECONDS": "7"},
    )
    try:
        live.start()
        yield live, proxy
    finally:
        proxy.restore()
        live.stop()
        proxy.stop()
        drop_pg_database(name)


def test_export_needing_the_database_while_it_is_down_is_503(
    cut_server: tuple[LiveServer, TcpProxy],
) -> None:
    server, proxy = cut_server
    org = new_org(server, superuser_client(server))
    gw = org.register()
    url = server.url + "/v1/otlp/v1/metrics"
    headers = {**PROTOBUF, "Authorization": f"Bearer {gw['opamp_token']}"}
    body = collector_export(0, 1.0).SerializeToString()
    proxy.cut()
    try:
        resp = httpx.post(url, content=body, headers=headers, timeout=30)
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "7"
        assert resp.json()["detail"] == "Database unavailable; retry later"
    finally:
        proxy.restore()
    again = httpx.post(url, content=body, headers=headers, timeout=30)
    assert again.status_code == 200, again.text
