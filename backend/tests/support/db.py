"""Direct database access for tests: put a row into a state the API cannot (yet) produce.

SQL is written with ``?`` placeholders; for PostgreSQL they become ``$1, $2, ...``. Values are
adapted per backend the way the server's types store them: SQLite keeps UUIDs as 32 hex digits
and datetimes as naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``); PostgreSQL uses ``uuid`` and
``timestamptz``. Use only for rows the server holds no buffered state for (for example a gateway
that has never sent a heartbeat), or the server may overwrite what a test writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.api import Org
from tests.support.polling import wait_for
from tests.support.server import LiveServer


def is_postgres(server: LiveServer) -> bool:
    return bool(server.database_url and server.database_url.startswith("postgresql"))


def _pg_dsn(server: LiveServer) -> str:
    assert server.database_url is not None
    return server.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("use timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _pg_sql(sql: str) -> str:
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], start=1)) + parts[-1]


def query(server: LiveServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (empty for statements without a result)."""
    if is_postgres(server):
        import asyncpg

        async def go() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(_pg_dsn(server), timeout=10)
            try:
                rows = await conn.fetch(_pg_sql(sql), *params)
            finally:
                await conn.close()
            return [tuple(row) for row in rows]

        return asyncio.run(go())
    conn = sqlite3.connect(server.data_dir / "flowgate.db", timeout=30)
    try:
        cursor = conn.execute(sql, [_sqlite_value(p) for p in params])
        rows = cursor.fetchall()
        conn.commit()
    finally:
        conn.close()
    return [tuple(row) for row in rows]


def execute(server: LiveServer, sql: str, *params: Any) -> None:
    query(server, sql, *params)


def update_row(server: LiveServer, table: str, row_id: str | uuid.UUID, **values: Any) -> None:
    """``UPDATE <table> SET <values> WHERE id = <row_id>``; exactly one row must match."""
    assert values and table.isidentifier() and all(k.isidentifier() for k in values)
    assignments = ", ".join(f"{column} = ?" for column in values)
    key = uuid.UUID(str(row_id))
    rows = query(
        server,
        f"UPDATE {table} SET {assignments} WHERE id = ? RETURNING id",
        *values.values(),
        key,
    )
    assert len(rows) == 1, f"no {table} row with id {key}"


def fetch_row(
    server: LiveServer, table: str, row_id: str | uuid.UUID, *columns: str
) -> tuple[Any, ...]:
    assert table.isidentifier() and all(c.isidentifier() for c in columns)
    rows = query(
        server,
        f"SELECT {', '.join(columns)} FROM {table} WHERE id = ?",
        uuid.UUID(str(row_id)),
    )
    assert len(rows) == 1, f"no {table} row with id {row_id}"
    return rows[0]


def wait_flushed(org: Org, timeout: float = 10) -> None:
    """Wait until every heartbeat the server buffered so far has been written (or has failed):
    a barrier heartbeat from a gateway of its own is written by the same or a later flush."""
    sentinel = org.register(name="zz-flush-barrier")
    marker = f"barrier-{uuid.uuid4().hex}"
    resp = org.heartbeat(sentinel, {"version": marker})
    assert resp.status_code == 200, resp.text
    wait_for(
        lambda: marker in str(fetch_row(org.server, "gateways", sentinel["id"], "extra_metadata")),
        timeout=timeout,
    )
