"""Start-up checks that turn an unusable data directory or database URL into one clear line.

Each check raises :class:`StartupError`, whose message names the directory or the database
(never the password of a database URL) and says what is wrong; the CLI prints it and exits 2.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

SUPPORTED = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
CONNECT_TIMEOUT_SECONDS = 10


class StartupError(Exception):
    """A start-up problem the operator has to fix; ``str()`` is the one line to show."""


def redacted(database_url: str) -> str:
    """The URL with its password replaced by ``***`` (or a placeholder if it does not parse)."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable FLOWGATE_DATABASE_URL>"


def parse_database_url(database_url: str) -> URL:
    """The parsed URL; refuses malformed URLs and drivers FlowGate does not ship."""
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:
        reason = "invalid port" if isinstance(exc, ValueError) else "not a database URL"
        raise StartupError(
            f"FLOWGATE_DATABASE_URL is malformed ({reason}); expected e.g. "
            "postgresql+asyncpg://USER:PASSWORD@HOST:5432/DBNAME"
        ) from None
    if SUPPORTED.get(url.get_backend_name()) != url.get_driver_name():
        raise StartupError(
            f"FLOWGATE_DATABASE_URL {redacted(database_url)} is not supported: use "
            "postgresql+asyncpg://... or sqlite+aiosqlite:///PATH"
        )
    return url


def check_directory(
    path: Path, what: str = "data directory", variable: str = "FLOWGATE_DATA_DIR"
) -> None:
    """Create ``path`` if needed and prove that files can be created in it."""
    shown = path.absolute()
    if path.exists() and not path.is_dir():
        raise StartupError(f"{what} {shown} is not a directory ({variable})")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartupError(f"{what} {shown} is not usable: {reason} ({variable})") from None


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, on one line."""
    while True:
        inner = getattr(exc, "orig", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_SECONDS} s"
    return " ".join(str(exc).split()) or type(exc).__name__


def check_database(database_url: str) -> None:
    """Connect once (within a timeout) so a wrong host, port, database name or password is one
    clear line instead of a traceback from the middle of a migration."""
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database not in (None, "", ":memory:"):
            check_directory(
                Path(url.database).parent, "database directory", "FLOWGATE_DATABASE_URL"
            )
        connect_args: dict[str, object] = {}
    else:
        connect_args = {"timeout": CONNECT_TIMEOUT_SECONDS}

    async def probe() -> None:
        engine = create_async_engine(database_url, poolclass=NullPool, connect_args=connect_args)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:
        reason = _reason(exc)
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise StartupError(f"cannot use the database {redacted(database_url)}: {reason}") from None
