"""The base of every request body: values that each supported database can store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

from flowgate.core import jsonsafe


def check_storable(value: Any) -> None:
    """Raise ValueError when ``value`` holds anything a database cannot store: a NUL character
    or an unpaired surrogate in any string or key, a non-finite float or an integer beyond
    64 bits (:func:`flowgate.core.jsonsafe.check` with no limit on shape or size; it walks
    iteratively, so depth cannot exhaust the stack). The message names where, e.g.
    ``text must not contain U+0000 at labels.env``.

    PostgreSQL rejects the first two in ``text`` and ``jsonb`` and JSON has no Infinity/NaN, so
    such input would otherwise fail only when written (a 500, or a failed heartbeat flush).
    """
    jsonsafe.check(value, "", jsonsafe.CONTENT_ONLY)


class RequestBody(BaseModel):
    """A JSON request body. Anything :func:`check_storable` refuses is a 422, never a 500,
    also inside free-form parts (metadata, metrics, labels)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        try:
            check_storable(data)
        except jsonsafe.UnsafeJSON as exc:
            raise PydanticCustomError("unstorable", "{problem}", {"problem": exc.problem}) from None
        return data
