"""Decide whether a JSON value is safe to store: the one check for every JSON column.

A value is *safe* when every database FlowGate supports can store it and every later read can
decode and serve it: nesting at most :attr:`Limits.depth` containers deep (Python's decoder and
encoder recurse, so a deeply nested value stored once would fail every read), bounded size and
key counts, strings of valid Unicode without U+0000 (PostgreSQL ``jsonb`` refuses it), finite
numbers (JSON has no NaN or Infinity), integers that fit in 64 bits, and string keys.

:func:`check` walks the value with an explicit stack and stops at the first problem, so no
input, however hostile, can exhaust the interpreter's stack or run long past the limits. The
module is pure: no web framework, no database.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any, Final, TypeAlias

__all__ = [
    "AGENT_REPORT",
    "AGENT_STATE_BYTES",
    "CONTENT_ONLY",
    "GATEWAY_METADATA",
    "INT_MAX",
    "INT_MIN",
    "KIB",
    "MAX_DEPTH",
    "MIB",
    "STORED",
    "VALUE",
    "Limits",
    "UnsafeJSON",
    "check",
    "decode",
    "json_size",
    "problem",
]

KIB: Final = 1024
MIB: Final = 1024 * KIB

MAX_DEPTH: Final = 32
"""Containers (objects and arrays) nested in one value a client or an agent sends."""

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1
"""Integers must fit in int64 or uint64 (OpAMP's types; also what orjson can encode)."""

_UNBOUNDED: Final = sys.maxsize


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one JSON value. Sizes are measured as :func:`json_size` does."""

    #: Containers nested inside each other; a scalar is depth 0, ``{}`` depth 1.
    depth: int = MAX_DEPTH
    #: Length of the value as compact JSON text (``json.dumps`` with ``(",", ":")``).
    bytes: int = 64 * KIB
    #: Keys in any one object.
    object_keys: int = 256
    #: Keys in all objects of the value together.
    total_keys: int = 2048
    #: Characters in one string value.
    string_chars: int = 16 * KIB
    #: Characters in one object key.
    key_chars: int = 256


VALUE: Final = Limits()
"""One value a client sends: heartbeat ``metrics`` and ``config_status``, registration
``metadata`` and ``labels``."""

GATEWAY_METADATA: Final = Limits(bytes=1 * MIB, object_keys=1024, total_keys=16384)
"""A gateway's registration metadata merged over all its registrations (each adds its keys)."""

AGENT_REPORT: Final = Limits(
    bytes=1 * MIB,
    object_keys=4096,
    total_keys=16384,
    string_chars=1 * MIB,
    key_chars=1024,
)
"""One OpAMP status report (agent description, health, effective config, available
components, ...) converted to JSON; strings may hold a whole configuration file."""

AGENT_STATE_BYTES: Final = 4 * MIB
"""All of one agent's stored reports together."""

STORED: Final = Limits(
    depth=MAX_DEPTH + 1,
    bytes=8 * MIB,
    object_keys=8192,
    total_keys=_UNBOUNDED,
    string_chars=1 * MIB,
    key_chars=1024,
)
"""A whole stored column (``flowgate db check``): the server wraps each value above in one
more object (``extra_metadata.metrics``, ``opamp_state.health``) and never writes more than
about half of these sizes, so only a value the server could not have written fails them."""

CONTENT_ONLY: Final = Limits(
    depth=_UNBOUNDED,
    bytes=_UNBOUNDED,
    object_keys=_UNBOUNDED,
    total_keys=_UNBOUNDED,
    string_chars=_UNBOUNDED,
    key_chars=_UNBOUNDED,
)
"""Only what the value holds (text, numbers, keys), not its shape or size: for a whole
request body, whose free-form parts are checked against :data:`VALUE` one by one. Only for
values parsed from JSON text: with no depth bound, a cyclic Python value would never end."""

# U+0000 (PostgreSQL refuses it in text and jsonb) and surrogates: a Python str decoded from
# JSON or UTF-8 holds a surrogate only when it is unpaired, which no UTF-8 encoder accepts.
_UNSTORABLE_CHARS: Final = re.compile("[\x00\ud800-\udfff]")
_PATH_UNSAFE: Final = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_PATH_SEGMENT_CHARS: Final = 40
_PATH_CHARS: Final = 120


class UnsafeJSON(ValueError):
    """A value :func:`check` refuses.

    ``str(exc)`` is ``"<what>: <problem>"``, for example ``"metrics: nested deeper than 32
    levels at metrics.a.a.a…"``; ``problem`` is the part after the colon, for callers that
    name ``what`` themselves. Neither ever contains the value's text beyond a shortened path
    of keys with control characters replaced, so both are safe to return and to log.
    """

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what}: {problem}" if what else problem)
        self.what = what
        self.problem = problem


# A path is a linked list (parent, segment) built only as deep as the walk goes; it is turned
# into text only for the error message.
_Path: TypeAlias = "tuple[_Path, str] | None"


def _render(what: str, path: _Path) -> str:
    segments: list[str] = []
    while path is not None:
        path, segment = path
        segments.append(segment)
    text = what
    for segment in reversed(segments):
        if len(segment) > _PATH_SEGMENT_CHARS:
            segment = segment[:_PATH_SEGMENT_CHARS] + "…"
        text += segment
        if len(text) > _PATH_CHARS:
            return _PATH_UNSAFE.sub("?", text[:_PATH_CHARS].removeprefix(".")) + "…"
    return _PATH_UNSAFE.sub("?", text.removeprefix("."))


def check(value: Any, what: str = "value", limits: Limits = VALUE) -> int:
    """Raise :class:`UnsafeJSON` unless ``value`` is safe to store under ``limits``.

    ``value`` is what ``json.loads`` returns (dict, list, str, int, float, bool, None); tuples
    count as arrays. ``what`` names the value in the message and starts every path (``""``
    for a whole document: the message is then the problem alone). Returns
    the value's :func:`json_size`. Work is bounded by the limits, not by the input: the walk
    stops at the first problem.
    """
    size = 0
    total_keys = 0
    # (value, depth of the container holding it, path to it)
    stack: list[tuple[Any, int, _Path]] = [(value, 0, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if len(item) > limits.string_chars:
                raise UnsafeJSON(
                    what,
                    f"text longer than {limits.string_chars} characters" + _at(what, path),
                )
            if _UNSTORABLE_CHARS.search(item):
                raise UnsafeJSON(what, _bad_text(item) + _at(what, path))
            size += len(encode_basestring_ascii(item))
        elif item is None or isinstance(item, bool):
            size += 4 if item is None or item is True else 5
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise UnsafeJSON(what, "integers must fit in 64 bits" + _at(what, path))
            size += len(int.__repr__(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnsafeJSON(
                    what, "numbers must be finite (no NaN or Infinity)" + _at(what, path)
                )
            size += len(float.__repr__(item))
        elif isinstance(item, dict):
            if depth >= limits.depth:
                raise UnsafeJSON(
                    what, f"nested deeper than {limits.depth} levels" + _at(what, path)
                )
            count = len(item)
            if count > limits.object_keys:
                raise UnsafeJSON(
                    what, f"more than {limits.object_keys} keys in one object" + _at(what, path)
                )
            total_keys += count
            if total_keys > limits.total_keys:
                raise UnsafeJSON(what, f"more than {limits.total_keys} keys in all")
            size += 2 + max(count - 1, 0) + count  # braces, commas, colons
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnsafeJSON(what, "object keys must be text" + _at(what, path))
                child_path = (path, "." + key)
                if len(key) > limits.key_chars:
                    raise UnsafeJSON(
                        what,
                        f"key longer than {limits.key_chars} characters" + _at(what, child_path),
                    )
                if _UNSTORABLE_CHARS.search(key):
                    raise UnsafeJSON(what, _bad_text(key, "keys") + _at(what, child_path))
                size += len(encode_basestring_ascii(key))
                stack.append((child, depth + 1, child_path))
        elif isinstance(item, list | tuple):
            if depth >= limits.depth:
                raise UnsafeJSON(
                    what, f"nested deeper than {limits.depth} levels" + _at(what, path)
                )
            size += 2 + max(len(item) - 1, 0)
            # Reversed, so the walk (and the first problem reported) goes in document order.
            for index in range(len(item) - 1, -1, -1):
                stack.append((item[index], depth + 1, (path, f"[{index}]")))
        else:
            raise UnsafeJSON(what, f"{type(item).__name__} is not a JSON value" + _at(what, path))
        if size > limits.bytes:
            raise UnsafeJSON(what, f"larger than {_human(limits.bytes)} as JSON")
    return size


def problem(value: Any, what: str = "value", limits: Limits = VALUE) -> str | None:
    """The message :func:`check` would raise, or ``None`` when ``value`` is safe."""
    try:
        check(value, what, limits)
    except UnsafeJSON as exc:
        return str(exc)
    return None


def decode(text: str | bytes, what: str = "value", limits: Limits = STORED) -> Any:
    """Parse JSON text and :func:`check` the result; raise :class:`UnsafeJSON` otherwise.

    Text the parser cannot handle (malformed, not UTF-8, nested past the interpreter's
    recursion limit, an integer of thousands of digits) is refused too, never raised as
    ``RecursionError``.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnsafeJSON(what, "cannot be decoded: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:100]
        raise UnsafeJSON(what, f"cannot be decoded: {reason}") from None
    check(value, what, limits)
    return value


def json_size(value: Any) -> int:
    """Length of ``json.dumps(value, separators=(",", ":"))`` for a safe value (the measure
    of :attr:`Limits.bytes`); raises :class:`UnsafeJSON` for an unsafe one."""
    return check(value, "value", CONTENT_ONLY)


def _at(what: str, path: _Path) -> str:
    return "" if path is None else f" at {_render(what, path)}"


def _bad_text(text: str, kind: str = "text") -> str:
    if "\x00" in text:
        return f"{kind} must not contain U+0000"
    return f"{kind} must be valid Unicode (unpaired surrogate)"


def _human(size: int) -> str:
    if size % MIB == 0:
        return f"{size // MIB} MiB"
    if size % KIB == 0:
        return f"{size // KIB} KiB"
    return f"{size} bytes"
