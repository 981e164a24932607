"""Database engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, Uuid, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapper

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class UndecodableJSON(dict[str, Any]):
    """What a JSON column reads as when its stored text cannot be decoded (nested past the
    interpreter's recursion limit, malformed, an integer of thousands of digits): an empty
    object, so one bad row never fails a whole query. ``flowgate db check`` moves such text
    to ``quarantined_values``; this is the defence for a row that got in anyway."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def load_json(text: str | bytes) -> Any:
    """The engines' JSON decoder (SQLite's JSON type and asyncpg's json/jsonb codecs): like
    ``json.loads``, but undecodable text becomes :class:`UndecodableJSON` and a warning."""
    try:
        return json.loads(text)
    except (RecursionError, ValueError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        log.warning(
            "undecodable JSON read from the database, served as {}; run `flowgate db check`",
            extra={"reason": reason, "length": len(text)},
        )
        return UndecodableJSON(reason)


def dump_json(value: Any) -> str:
    """The engines' JSON encoder: orjson (a tenth of ``json.dumps`` for the OpAMP states a
    presence flush writes by the thousand), falling back to ``json.dumps`` for what orjson
    refuses (integers past 64 bits), so anything storable before still is."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(as_uuid=True),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
    }


_JSON_ATTRIBUTES: dict[Mapper[Any], tuple[str, ...]] = {}


@event.listens_for(Base, "load", propagate=True)
def _name_undecodable_rows(target: Any, _context: Any) -> None:
    # load_json cannot know which row it decodes; name the row here, for ORM loads.
    mapper = target.__mapper__
    keys = _JSON_ATTRIBUTES.get(mapper)
    if keys is None:
        keys = _JSON_ATTRIBUTES[mapper] = tuple(
            prop.key
            for prop in mapper.column_attrs
            if any(isinstance(col.type, JSON) for col in prop.columns)
        )
    for key in keys:
        value = target.__dict__.get(key)
        if isinstance(value, UndecodableJSON):
            log.warning(
                "stored JSON could not be decoded and is served as {}",
                extra={
                    "table": mapper.local_table.name,
                    "row_id": str(getattr(target, "id", "?")),
                    "column": key,
                    "reason": value.reason,
                },
            )


def utcnow() -> datetime:
    return datetime.now(UTC)


#: PostgreSQL: seconds to establish a connection, and to wait for one from a full pool.
CONNECT_TIMEOUT_SECONDS = 5
POOL_TIMEOUT_SECONDS = 10

#: PostgreSQL settings of every FlowGate connection. No parallel query: FlowGate's queries
#: read index ranges of at most an organisation's gateways, and starting a query's parallel
#: workers costs more than they save there (at 100k gateways, the first page of
#: ``env=staging,region=ap-east,tier=edge,!canary`` took 20-22 ms in SQL with two workers and
#: 12 ms without; counts of one requirement moved within the noise). Under load the workers
#: would also take cores from the other requests.
POSTGRES_SESSION_SETTINGS = {"max_parallel_workers_per_gather": "0"}


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            json_serializer=dump_json,
            json_deserializer=load_json,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # asyncpg's name for the connect timeout (the only async PostgreSQL driver we ship).
    asyncpg = "+asyncpg" in url.split(":", 1)[0]
    connect_args: dict[str, Any] = (
        {"timeout": CONNECT_TIMEOUT_SECONDS, "server_settings": POSTGRES_SESSION_SETTINGS}
        if asyncpg
        else {}
    )
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        # An unreachable server must fail a request quickly (503 + Retry-After), not hang it:
        # bound both the TCP/TLS/startup handshake and the wait for a free pooled connection.
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args=connect_args,
        json_serializer=dump_json,
        json_deserializer=load_json,
    )


class Database:
    """Owns the engine and hands out one session (unit of work) per request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def session(self) -> AsyncIterator[AsyncSession]:
        """Yield a session; commit when the caller finishes cleanly, roll back on error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def warm(self, connections: int) -> None:
        """Open up to ``connections`` pooled connections now, before agents arrive. After a
        restart every known agent reconnects at once; connections opened during that storm
        share a saturated event loop and can exceed the connect timeout. SQLite has no pool
        worth warming. A failure here is left to the first request (503 + Retry-After)."""
        if self.dialect == "sqlite":
            return
        count = min(connections, self.engine.pool.size())  # type: ignore[attr-defined]
        opened = await asyncio.gather(
            *(self.engine.connect().start() for _ in range(count)), return_exceptions=True
        )
        failed = [conn for conn in opened if isinstance(conn, BaseException)]
        for conn in opened:
            if not isinstance(conn, BaseException):
                await conn.close()  # back to the pool, still open
        if failed:
            log.warning(
                "could not open %d database connections ahead of agents: %r", len(failed), failed[0]
            )

    async def dispose(self) -> None:
        await self.engine.dispose()
