"""Locks that make FlowGate processes starting at the same time on one database safe.

Two locks exist per database:

* the **start-up lock** (:func:`startup_lock`): exclusive and blocking, held only while migrating
  and while bootstrapping, so processes that start together do those steps one after another
  and each one re-checks what the previous one did;
* the **server lock** (:func:`hold_server_lock`): held by every serving process for its whole
  life, *exclusive* when the process has no Redis bus and *shared* when it has one. Processes
  only know their own gateway connections unless Redis carries config pushes and revocations
  between them, so a second server on the database is refused unless every one of them uses
  Redis.

PostgreSQL: session advisory locks on a dedicated connection, outside the application's pool and
in autocommit mode so no transaction stays open. Locks are per database, and PostgreSQL drops
them when the connection ends, so a crashed process never leaves one behind.
SQLite: ``flock`` on files beside the database file (``<db>-startup.lock``, ``<db>-server.lock``);
the kernel drops them when the process ends. An in-memory SQLite database needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# Advisory lock keys: "FGstart" / "FGserve" as big-endian integers, unlikely to collide with
# another application's locks in the same database.
STARTUP_KEY = int.from_bytes(b"FGstart", "big")
SERVER_KEY = int.from_bytes(b"FGserve", "big")


class ServerLockBusy(Exception):
    """Another server holds the server lock in a mode that conflicts with ours."""


def lock_file(database_url: str, kind: str) -> Path | None:
    """The lock file of a SQLite database (``<db>-<kind>.lock``); None when none is needed."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}-{kind}.lock")


def _is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def _lock_engine(database_url: str) -> AsyncEngine:
    return create_async_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def _open_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.asynccontextmanager
async def startup_lock(database_url: str) -> AsyncIterator[None]:
    """Hold the start-up lock of ``database_url``, waiting for another process to release it."""
    if _is_postgres(database_url):
        engine = _lock_engine(database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": STARTUP_KEY})
                try:
                    yield
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": STARTUP_KEY})
        finally:
            await engine.dispose()
        return
    path = lock_file(database_url, "startup")
    if path is None:
        yield
        return
    fd = _open_lock_file(path)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class ServerLock:
    """A held server lock; :meth:`release` gives it back (the process ending does too)."""

    def __init__(
        self, engine: AsyncEngine | None = None, conn: AsyncConnection | None = None, fd: int = -1
    ) -> None:
        self._engine = engine
        self._conn = conn
        self._fd = fd

    async def release(self) -> None:
        """Give the lock back. Never raises: the connection may already be gone, and then
        PostgreSQL has released the lock with it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._conn is not None:
            try:
                await self._conn.close()
            except Exception:
                log.debug("server lock connection was already closed", exc_info=True)
            self._conn = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


async def hold_server_lock(database_url: str, *, shared: bool) -> ServerLock:
    """Take the server lock without waiting: shared (every process uses Redis) or exclusive.

    Raises :class:`ServerLockBusy` when another process holds it in a conflicting mode.
    """
    if _is_postgres(database_url):
        fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        engine = _lock_engine(database_url)
        try:
            conn = await engine.connect()
            got = await conn.scalar(text(f"SELECT {fn}(:k)"), {"k": SERVER_KEY})
        except BaseException:
            await engine.dispose()
            raise
        if not got:
            await conn.close()
            await engine.dispose()
            raise ServerLockBusy
        return ServerLock(engine=engine, conn=conn)
    path = lock_file(database_url, "server")
    if path is None:
        return ServerLock()
    fd = _open_lock_file(path)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServerLockBusy from None
    except BaseException:
        os.close(fd)
        raise
    return ServerLock(fd=fd)
