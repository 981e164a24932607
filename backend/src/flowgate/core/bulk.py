"""Set-based writes for large fan-outs on PostgreSQL.

A deployment to 10,000 gateways writes 10,000 targets and 10,000 assignments; built as rows,
each goes through SQLAlchemy's per-row parameter handling and a 1,000-row statement. On
PostgreSQL the same write is one statement over ``unnest`` of a few arrays, each sent as one
parameter (asyncpg encodes them in C). SQLite has no arrays: callers keep their row-based
path there (:func:`is_postgres`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import DateTime, Integer, TableValuedAlias, Text, Uuid, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

_TYPES: dict[str, TypeEngine[Any]] = {
    "uuid": Uuid(),
    "int": Integer(),
    "text": Text(),
    # Aware datetimes only (what UTCDateTime columns hold); asyncpg encodes them in C.
    "timestamptz": DateTime(timezone=True),
}


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def unnest(name: str, **columns: tuple[str, Sequence[Any]]) -> TableValuedAlias:
    """``unnest(:a::T[], :b::U[]) AS name(a, b)``: a table with one row per position of the
    equally long sequences; ``columns`` maps a column name to ``(type, values)`` with type one
    of ``uuid``, ``int``, ``text``, ``timestamptz`` (JSON goes as ``text`` of its encoding,
    cast to the column's type where it is used)."""
    arrays = []
    for column, (kind, values) in columns.items():
        # asyncpg's dialect renders the parameter as ``$n::T[]``: the array's type is explicit.
        arrays.append(bindparam(f"{name}_{column}", list(values), type_=ARRAY(_TYPES[kind])))
    return func.unnest(*arrays).table_valued(*columns).render_derived(name=name)
