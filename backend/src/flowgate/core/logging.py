"""Logging: one JSON object per line, or readable text lines, carrying the ``extra`` fields.

``FLOWGATE_LOG_FORMAT``: ``json``, ``text`` (``HH:MM:SS LEVEL logger message key=value ...``) or
``auto`` (text when stderr is a terminal, JSON otherwise, so people read text and log shippers get
JSON). Callers never pass secrets in messages or extras; both formats also drop any extra whose
name looks like a credential, as a second line of defence.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

# uvicorn's "color_message" repeats the message with ANSI colours.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_STANDARD.add("color_message")
_SECRET_WORDS = ("token", "password", "secret", "authorization", "api_key_value")


def _extras(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """The record's ``extra`` fields, minus any whose name looks like a credential."""
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if any(w in key.lower() for w in _SECRET_WORDS) and not key.endswith("_id"):
            continue
        yield key, value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger message key=value ...`` (local time), then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        parts = [when, f"{record.levelname:<7}", record.name, record.getMessage()]
        for key, value in _extras(record):
            shown = value if isinstance(value, str) and value and " " not in value else repr(value)
            parts.append(f"{key}={shown}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class PerConnectionFilter(logging.Filter):
    """Drops the lines uvicorn (and the websockets library under it) writes at INFO for every
    WebSocket: ``"WebSocket /v1/opamp" [accepted]``, ``connection open``, ``connection closed``.
    A fleet reconnecting is tens of thousands of them, each formatted and written on the event
    loop that answers the agents; FlowGate's own logs and metrics say what matters (refusals,
    failures, counts). Other uvicorn lines (start-up, errors, refused upgrades) stay.

    Also dropped: the ERROR uvicorn writes after every upgrade refused with a real HTTP status
    (the ASGI denial response a 401 or 503 is sent with), "ASGI callable returned without
    completing handshake", but only when the OpAMP endpoint did send that refusal
    (:data:`UPGRADE_REFUSED`): it is a quirk of uvicorn (0.54), and in a storm every agent
    told to retry later would write one; an app that really returned without answering
    still gets the line."""

    DROPPED = frozenset({"connection open", "connection closed"})
    REFUSAL_QUIRK = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        if not isinstance(msg, str):
            return True
        if msg in self.DROPPED:
            return False
        if msg == self.REFUSAL_QUIRK:
            return not UPGRADE_REFUSED.get()
        return not (msg.endswith("[accepted]") and '"WebSocket ' in msg)


#: Set (in the connection's own task) when a WebSocket upgrade was refused with an HTTP
#: response; see :class:`PerConnectionFilter`.
UPGRADE_REFUSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flowgate_upgrade_refused", default=False
)


def formatter(fmt: str = "auto") -> logging.Formatter:
    """The formatter for a ``FLOWGATE_LOG_FORMAT`` value."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    return TextFormatter() if fmt == "text" else JsonFormatter()


def logging_config(level: str = "INFO", fmt: str = "auto") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document: every logger to stderr in ``fmt``.

    It is also handed to uvicorn, which applies it again in each worker process.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"flowgate": {"()": f"{__name__}.formatter", "fmt": fmt}},
        "filters": {"per_connection": {"()": f"{__name__}.PerConnectionFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "flowgate",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # uvicorn's access log would print request lines; keep its errors, quiet the rest.
        # Alembic announces each of its plugins at INFO on every start.
        "loggers": {
            "uvicorn.access": {"level": "WARNING"},
            "uvicorn.error": {"filters": ["per_connection"]},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    logging.config.dictConfig(logging_config(level, fmt))
