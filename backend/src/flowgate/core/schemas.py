"""The base of every request body: values that each supported database can store."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, model_validator

_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def check_storable(value: Any) -> None:
    """Raise ValueError when ``value`` (walked iteratively, so depth cannot exhaust the stack)
    holds a NUL character or an unpaired surrogate in any string or key, or a non-finite float.
    The message names where, e.g. ``labels.env: ...``.

    PostgreSQL rejects the first two in ``text`` and ``jsonb`` and JSON has no Infinity/NaN, so
    such input would otherwise fail only when written (a 500, or a failed heartbeat flush).
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        problem = None
        if isinstance(item, str):
            if _UNSTORABLE_CHARS.search(item):
                problem = "text must not contain NUL characters or unpaired surrogates"
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = "numbers must be finite"
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                stack.append((path, key))
                stack.append((path, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
        if problem:
            where = _UNSTORABLE_CHARS.sub("?", where)
            raise ValueError(f"{where}: {problem}" if where else problem)


class RequestBody(BaseModel):
    """A JSON request body. Anything :func:`check_storable` refuses is a 422, never a 500,
    also inside free-form parts (metadata, metrics, labels)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data)
        return data
