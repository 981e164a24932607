"""Quarantine stored JSON that cannot be served: move it aside, leave ``{}`` in its place.

A JSON column value is *bad* when its text cannot be decoded, when it fails
:data:`flowgate.core.jsonsafe.STORED` (the limits of everything the server itself writes, with
room to spare) or when it is not an object (every JSON column holds an object, or NULL).
:func:`scan` moves each bad value, text unchanged, into ``quarantined_values`` and resets the
column to ``{}``. It runs in migration 0002 (for values stored before the checks existed) and
on demand as ``flowgate db check``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import JSON, String, Text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core import jsonsafe
from flowgate.core.db import Base, JSONType, UTCDateTime, create_engine, utcnow

__all__ = ["Finding", "QuarantinedValue", "check_database", "json_columns", "scan"]

_BATCH: Final = 500


class QuarantinedValue(Base):
    """One stored JSON value taken out of its column because it could not be served."""

    __tablename__ = "quarantined_values"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    table_name: Mapped[str] = mapped_column(String(64))
    #: The row's primary key as text (a UUID, or a number for the history tables).
    row_id: Mapped[str] = mapped_column(String(64))
    column_name: Mapped[str] = mapped_column(String(64))
    #: The stored text exactly as read (invalid UTF-8 replaced by U+FFFD).
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(default=utcnow)


# The columns scan() writes, spelled out so migration 0002 keeps working if the model grows.
_QUARANTINE = sa.table(
    "quarantined_values",
    sa.column("id", sa.Uuid()),
    sa.column("table_name", String()),
    sa.column("row_id", String()),
    sa.column("column_name", String()),
    sa.column("raw", Text()),
    sa.column("reason", Text()),
    sa.column("quarantined_at", UTCDateTime()),
)


@dataclass(frozen=True)
class Finding:
    """A value :func:`scan` quarantined."""

    table: str
    row_id: str
    column: str
    reason: str


def json_columns(metadata: sa.MetaData = Base.metadata) -> dict[str, tuple[str, ...]]:
    """Every JSON column of the mapped tables, by table (what ``flowgate db check`` scans)."""
    found: dict[str, tuple[str, ...]] = {}
    for table in metadata.sorted_tables:
        if table.info.get("append_only"):  # UPDATEs refused: nothing can be quarantined
            continue
        names = tuple(col.name for col in table.columns if isinstance(col.type, JSON))
        if names:
            if [col.name for col in table.primary_key.columns] != ["id"]:
                raise ValueError(f"{table.name}: scan() needs a primary key column named id")
            found[table.name] = names
    return found


def _shape(table_name: str, column: str) -> type:
    """What a column's values are: JSON objects, or arrays where the model says so
    (``info={"json": "array"}``)."""
    mapped = Base.metadata.tables.get(table_name)
    if mapped is not None and column in mapped.c and mapped.c[column].info.get("json") == "array":
        return list
    return dict


def _judge(raw: str | bytes, column: str, shape: type = dict) -> tuple[str, str | None]:
    """(the text to keep, why it is bad or None)."""
    if isinstance(raw, bytes):  # SQLite: read as bytes, so invalid UTF-8 cannot fail the read
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace"), f"{column}: not valid UTF-8"
    else:
        text = raw
    try:
        value = jsonsafe.decode(text, column, jsonsafe.STORED)
    except jsonsafe.UnsafeJSON as exc:
        return text, str(exc)
    if value is not None and not isinstance(value, shape):
        return text, f"{column}: not a JSON {'array' if shape is list else 'object'}"
    return text, None


def _id_type(table_name: str) -> sa.types.TypeEngine[Any]:
    """The type of the table's ``id`` (a UUID, or an integer for the history tables)."""
    mapped = Base.metadata.tables.get(table_name)
    return mapped.c.id.type if mapped is not None and "id" in mapped.c else sa.Uuid()


def _scan_column(connection: Connection, table_name: str, column: str) -> list[Finding]:
    table = sa.table(table_name, sa.column("id", _id_type(table_name)), sa.column(column, JSONType))
    # The stored text, not the decoded value: decoding is what may fail. SQLite hands back
    # bytes for a BLOB cast, so a row of invalid UTF-8 cannot fail the query either.
    raw_type = sa.LargeBinary() if connection.dialect.name == "sqlite" else Text()
    raw = sa.cast(table.c[column], raw_type)
    shape = _shape(table_name, column)
    findings: list[Finding] = []
    last: Any = None
    while True:
        query = sa.select(table.c.id, raw).where(table.c[column].is_not(None))
        if last is not None:
            query = query.where(table.c.id > last)
        rows = connection.execute(query.order_by(table.c.id).limit(_BATCH)).all()
        if not rows:
            return findings
        last = rows[-1][0]
        for row_id, stored in rows:
            text, reason = _judge(stored, column, shape)
            if reason is None:
                continue
            # Only if unchanged since read: a running server may have rewritten it meanwhile.
            reset = connection.execute(
                sa.update(table)
                .where(table.c.id == row_id, raw == stored)
                .values({column: [] if shape is list else {}})
                .execution_options(synchronize_session=False)
            )
            if reset.rowcount != 1:
                continue
            connection.execute(
                sa.insert(_QUARANTINE).values(
                    id=uuid.uuid4(),
                    table_name=table_name,
                    row_id=str(row_id),
                    column_name=column,
                    raw=text,
                    reason=reason,
                    quarantined_at=utcnow(),
                )
            )
            findings.append(Finding(table_name, str(row_id), column, reason))


def scan(connection: Connection, columns: Mapping[str, Sequence[str]]) -> list[Finding]:
    """Quarantine every bad value in ``columns`` (table -> JSON column names; each table has
    a primary key ``id``) and return what was moved. Reads in batches of 500 rows; the
    caller owns the transaction. Safe to run while a server writes: a value that changed
    after it was read is left for the next scan."""
    findings: list[Finding] = []
    for table_name, names in columns.items():
        for column in names:
            findings.extend(_scan_column(connection, table_name, column))
    return findings


async def check_database(url: str) -> list[Finding]:
    """:func:`scan` every JSON column of the tables on ``Base.metadata`` in the database at
    ``url``, committed. The caller imports the models first (``flowgate.models``)."""

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(scan, json_columns())
    finally:
        await engine.dispose()
