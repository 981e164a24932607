"""Telling "the database cannot be reached" apart from bugs, and logging an outage once.

:func:`is_unavailable` is the one place that decides which exceptions mean the database is
down, unreachable, restarting, out of connections or (SQLite) locked. Callers answer those with
503 + ``Retry-After`` (REST, plain-HTTP OpAMP) or UNAVAILABLE (an open OpAMP WebSocket) instead
of a 500, and report them to :data:`tracker`, which logs one WARNING when an outage starts,
counts the refused requests silently, and logs one line when the database answers again.
Successes are reported from cheap places that really reached the database (a request's commit
after it ran a statement, a presence flush that wrote rows), never from a no-op.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from typing import Final

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

#: ``Retry-After`` of a REST answer during an outage: about one connect timeout, so a client
#: that retries promptly is not refused again by a pool still waiting on the previous attempt.
RETRY_AFTER_SECONDS: Final = 5
DETAIL: Final = "Database unavailable; retry later"

#: SQLite errors that mean "try again later", not "the statement is wrong" (its
#: OperationalError also covers syntax errors and missing tables, which are bugs).
_SQLITE_TRANSIENT: Final = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
)

# asyncpg ships no type information; its exception classes are all this module needs.
pg = importlib.import_module("asyncpg.exceptions")

_ASYNCPG_DOWN: Final[tuple[type[Exception], ...]] = (
    pg.PostgresConnectionError,  # 08xxx: connection failure, does not exist, rejected
    pg.OperatorInterventionError,  # 57Pxx: cannot connect now, admin or crash shutdown
    pg.InsufficientResourcesError,  # 53xxx: too many connections, out of memory, disk full
)


#: Every class a driver or the network raises when the database is away (and more besides:
#: callers catching these must still ask :func:`is_unavailable`).
DATABASE_ERRORS: Final[tuple[type[Exception], ...]] = (
    sa_exc.SQLAlchemyError,
    OSError,
    sqlite3.Error,
    pg.PostgresError,
    pg.InterfaceError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps (SQLAlchemy's ``orig``, ``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 16:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (  # pushed in reverse: the wrapped driver error comes out first
            current.__context__,
            current.__cause__,
            getattr(current, "orig", None),
        ):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _driver_says_unavailable(exc: BaseException) -> bool | None:
    """True/False when ``exc`` is a driver or network error we can classify, else None."""
    if isinstance(exc, OSError):  # refused, reset, unreachable, DNS (gaierror), TimeoutError
        return True
    if isinstance(exc, _ASYNCPG_DOWN):
        return True
    if isinstance(exc, pg.InterfaceError):
        # "connection is closed" means the server went away; "another operation is in
        # progress" and the like are bugs in the caller.
        return "connection" in str(exc).lower() and "closed" in str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(text in message for text in _SQLITE_TRANSIENT)
    if isinstance(exc, sqlite3.Error):
        return False
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached right now (so the request may
    succeed later, unchanged), False for anything else, including refused data and bugs."""
    classified: bool | None = None
    for current in _chain(exc):
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return True  # the pool gave up waiting for a connection, or lost one
        verdict = _driver_says_unavailable(current)
        if verdict:
            return True
        if verdict is False:
            classified = False
    # A driver we do not know: these two classes are its connection-level errors.
    return classified is None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def describe(exc: BaseException) -> str:
    """Class names only (``OperationalError(ConnectionRefusedError)``): an SQLAlchemy message
    carries the statement and its parameters, which may hold secrets' digests."""
    names = [type(current).__name__ for current in _chain(exc)]
    unique = list(dict.fromkeys(names))
    if len(unique) == 1:
        return unique[0]
    return f"{unique[0]}({', '.join(unique[1:])})"


class OutageTracker:
    """Outage state of this process: logs the start and the end of an outage, not each refusal.

    Both lines are WARNINGs, so a log filtered to warnings shows where each outage ended.
    Used from the event loop's thread only.
    """

    def __init__(self) -> None:
        self._since: float | None = None
        self._refused = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, where: str, request: bool = True) -> None:
        """The database could not be reached (``exc`` satisfied :func:`is_unavailable`).
        ``request`` counts it as a refused request (False for background work)."""
        if self._since is None:
            self._since = time.monotonic()
            self._refused = 0
            log.warning(
                "database unavailable",
                extra={"error": describe(exc), "where": where},
            )
        if request:
            self._refused += 1

    def succeeded(self) -> None:
        """Something just reached the database. Cheap when there is no outage."""
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        refused, self._since, self._refused = self._refused, None, 0
        log.warning(
            f"database available again after {seconds:.1f} s, {refused} requests refused",
            extra={"outage_seconds": round(seconds, 3), "refused_requests": refused},
        )


#: The process-wide tracker (one database per process).
tracker = OutageTracker()
