"""Stopping background loops (flowgate.core.background) between passes, never inside one.

The PostgreSQL case is the one that hung a server on SIGTERM: a presence flush cancelled while
asyncpg's executemany was still sending rows leaves the connection waiting for a reply that
never comes, with the transaction open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from flowgate.core import background
from flowgate.core.background import BackgroundTask
from tests.conftest import IN_CI
from tests.support.server import pg_available


def looping(work: Callable[[], Awaitable[object]]) -> BackgroundTask:
    task = BackgroundTask("test-loop")

    async def run() -> None:
        while True:
            await background.step(work, where="test loop")
            await asyncio.sleep(3600)

    task.start(run)
    return task


async def test_a_stop_during_a_pass_lets_the_pass_finish() -> None:
    started, finished = asyncio.Event(), []

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(True)

    task = looping(work)
    await started.wait()
    await task.stop()
    assert finished == [True]
    assert not task.running


async def test_a_pass_that_never_ends_does_not_hold_the_stop_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "PASS_GRACE_SECONDS", 0.2)
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = looping(work)
    await started.wait()
    await asyncio.wait_for(task.stop(), 5)
    assert not task.running


@pytest.fixture
async def pg() -> AsyncIterator[object]:
    if not pg_available():
        if IN_CI:
            pytest.fail("PostgreSQL is required when CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", timeout=10)
    try:
        await conn.execute(
            "CREATE TEMP TABLE rows_t (id int PRIMARY KEY, v int);"
            "INSERT INTO rows_t SELECT g, 0 FROM generate_series(1, 60000) g"
        )
        yield conn
    finally:
        conn.terminate()


async def test_a_stop_during_an_executemany_leaves_the_connection_usable(pg: object) -> None:
    import asyncpg

    conn = pg
    assert isinstance(conn, asyncpg.Connection)
    rows = [(i, i) for i in range(1, 50_001)]
    sending = asyncio.Event()

    async def flush() -> None:
        async with conn.transaction():
            sending.set()
            await conn.executemany("UPDATE rows_t SET v = $2 WHERE id = $1", rows)

    task = looping(flush)
    await sending.wait()
    await asyncio.sleep(0.01)  # well inside the executemany: it takes ~1 s
    stopping = asyncio.ensure_future(task.stop())
    done, _ = await asyncio.wait({stopping}, timeout=30)
    if not done:  # the hang this guards against: end it by closing the socket
        conn.terminate()
    assert done, "the stop hung on an executemany cancelled half-way"
    # Cancelled half-way, the connection would be "another operation is in progress" for good.
    count = await asyncio.wait_for(conn.fetchval("SELECT count(*) FROM rows_t WHERE v > 0"), 10)
    assert count == 50_000
