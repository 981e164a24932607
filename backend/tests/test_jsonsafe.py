"""The one check for stored JSON: what it refuses, what it accepts, and that no input can make
it recurse, loop or raise anything but UnsafeJSON."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.core import jsonsafe
from flowgate.core.jsonsafe import Limits, UnsafeJSON, check, decode, json_size, problem

SMALL = Limits(depth=4, bytes=100, object_keys=3, total_keys=5, string_chars=10, key_chars=5)


def nested_dict(depth: int, key: str = "a") -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {key: value}
    return value


def nested_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def reason(value: Any, limits: Limits = jsonsafe.VALUE, what: str = "metrics") -> str:
    with pytest.raises(UnsafeJSON) as caught:
        check(value, what, limits)
    assert str(caught.value) == f"{what}: {caught.value.problem}"
    assert caught.value.what == what
    return str(caught.value)


def test_the_reported_defect_nesting_940_deep_is_refused_with_its_path() -> None:
    text = reason({"a": nested_dict(940)})
    assert text.startswith("metrics: nested deeper than 32 levels at metrics.a.a.a")


@pytest.mark.parametrize("build", [nested_dict, nested_list])
def test_depth_32_is_accepted_and_33_refused(build: Any) -> None:
    check(build(32), "v")
    assert "nested deeper than 32 levels" in reason(build(33))
    assert check(0) == 1  # a scalar is depth 0


def test_mixed_nesting_counts_both_kinds_of_container() -> None:
    value: Any = 1
    for level in range(33):
        value = [value] if level % 2 else {"k": value}
    text = reason(value)
    assert "nested deeper than 32 levels at metrics" in text
    assert "[0].k" in text


@pytest.mark.parametrize("depth", [5_000, 100_000, 1_000_000])
def test_hostile_depth_never_recurses(depth: int) -> None:
    # Far past the interpreter's recursion limit: built iteratively, checked iteratively.
    assert depth > sys.getrecursionlimit()
    assert "nested deeper" in reason(nested_list(depth))
    assert "nested deeper" in reason(nested_dict(depth))


def test_a_cycle_is_refused_not_walked_forever() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "nested deeper" in reason(loop)
    obj: dict[str, Any] = {}
    obj["self"] = obj
    assert "nested deeper" in reason(obj, dataclasses.replace(jsonsafe.CONTENT_ONLY, depth=50))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"x": math.nan}, "numbers must be finite (no NaN or Infinity) at metrics.x"),
        ({"x": [math.inf]}, "numbers must be finite (no NaN or Infinity) at metrics.x[0]"),
        (-math.inf, "numbers must be finite"),
        ({"s": "a\x00b"}, "text must not contain U+0000 at metrics.s"),
        ({"s": "a\ud800b"}, "text must be valid Unicode (unpaired surrogate) at metrics.s"),
        ({"s": "\udfff"}, "unpaired surrogate"),
        ({"k\x00": 1}, "keys must not contain U+0000 at metrics.k?"),
        ({"k\udc80": 1}, "keys must be valid Unicode (unpaired surrogate) at metrics.k?"),
        ({1: "v"}, "object keys must be text"),
        ({"n": 2**64}, "integers must fit in 64 bits at metrics.n"),
        ({"n": -(2**63) - 1}, "integers must fit in 64 bits"),
        ({"b": b"bytes"}, "bytes is not a JSON value at metrics.b"),
        ({"s": {1, 2}}, "set is not a JSON value"),
    ],
)
def test_unstorable_content_is_refused_with_where(value: Any, expected: str) -> None:
    assert expected in reason(value)


def test_integer_bounds_are_int64_and_uint64() -> None:
    check([2**64 - 1, -(2**63), 0, True, False, None, 1.5, -0.0])


def test_size_key_and_string_limits() -> None:
    check({"a": "x" * 10, "b": 1, "c": 2}, "v", SMALL)
    assert reason({"a": "x" * 11}, SMALL) == "metrics: text longer than 10 characters at metrics.a"
    assert reason({"abcdef": 1}, SMALL) == (
        "metrics: key longer than 5 characters at metrics.abcdef"
    )
    assert reason({"a": 1, "b": 2, "c": 3, "d": 4}, SMALL) == (
        "metrics: more than 3 keys in one object"
    )
    assert reason({"a": {"b": 1, "c": 2}, "d": {"e": 1, "f": 2}}, SMALL) == (
        "metrics: more than 5 keys in all"
    )
    assert reason(["x" * 10] * 10, SMALL) == "metrics: larger than 100 bytes as JSON"


def test_default_limits_in_bytes() -> None:
    limit = jsonsafe.VALUE.bytes
    under = {"s": ["x" * 1000] * 60}
    assert json_size(under) <= limit
    check(under)
    over = {"s": ["x" * 1000] * 66}
    assert json_size(over) > limit
    assert reason(over) == "metrics: larger than 64 KiB as JSON"
    assert "more than 256 keys in one object" in reason({str(i): i for i in range(257)})
    assert "more than 2048 keys in all" in reason([{str(i): i for i in range(200)}] * 11)
    assert "text longer than 16384 characters" in reason("x" * 16385)


def test_paths_in_messages_are_short_and_printable() -> None:
    text = reason({"k" * 200: {"\n\x1b": math.nan}})
    assert text.startswith("metrics: numbers must be finite (no NaN or Infinity) at metrics.")
    assert "k" * 39 + "….??" in text
    assert "\n" not in text and "\x1b" not in text
    assert len(reason(nested_dict(100, key="b" * 30))) < 200


def test_problem_returns_the_message_or_none() -> None:
    assert problem({"a": 1}) is None
    assert problem({"a": math.nan}, "labels") == (
        "labels: numbers must be finite (no NaN or Infinity) at labels.a"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "cannot be decoded: nested too deeply"),
        ("9" * 5000, "cannot be decoded: Exceeds the limit"),
        ('{"a": ', "cannot be decoded: Expecting value"),
        (b"\xff\xfe\x00", "cannot be decoded"),
        ('{"a": NaN}', "numbers must be finite"),
        ('{"a": "\\u0000"}', "U+0000"),
        ('{"a": "\\ud800"}', "unpaired surrogate"),
        ("[" * 40 + "]" * 40, "nested deeper than 33 levels"),
    ],
)
def test_decode_refuses_what_cannot_be_served(text: str | bytes, expected: str) -> None:
    with pytest.raises(UnsafeJSON) as caught:
        decode(text, "labels")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("labels: ")


def test_decode_returns_safe_values() -> None:
    assert decode('{"a": [1, 2.5, "é", null, true]}') == {"a": [1, 2.5, "é", None, True]}


# -- properties ---------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=jsonsafe.INT_MIN, max_value=jsonsafe.INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
)
safe_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(max_size=8).filter(lambda k: "\x00" not in k), children, max_size=5
        )
    ),
    max_leaves=40,
)
any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=3),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(safe_values)
def test_size_is_the_compact_json_length(value: Any) -> None:
    assert json_size(value) == len(json.dumps(value, separators=(",", ":")))
    check(value, "v", jsonsafe.CONTENT_ONLY)


@settings(max_examples=500, deadline=None)
@given(any_values)
def test_anything_accepted_round_trips_and_nothing_else_escapes(value: Any) -> None:
    try:
        check(value, "v", jsonsafe.AGENT_REPORT)
    except UnsafeJSON:
        return
    text = json.dumps(value, allow_nan=False)
    text.encode("utf-8")  # no surrogates
    assert "\\u0000" not in text
    json.loads(text)


@settings(max_examples=200, deadline=None)
@given(safe_values)
def test_decode_accepts_what_json_dumps_writes(value: Any) -> None:
    assert decode(json.dumps(value)) == json.loads(json.dumps(value))


def test_the_engines_json_encoder_stores_what_json_dumps_stored() -> None:
    """``dump_json`` (orjson) writes the same values ``json.dumps`` did, non-ASCII text and
    integer keys included, and falls back for integers orjson cannot encode."""
    import json

    from flowgate.core.db import dump_json

    values: list[Any] = [
        {"labels": {"région": "île-de-France", "emoji": "🚀"}, "n": [1, 2.5, True, None]},
        {1: "integer keys become text", "nested": {"deep": [{"x": -(2**63)}]}},
        {"big": 2**70},
        [],
        "plain",
    ]
    for value in values:
        assert json.loads(dump_json(value)) == json.loads(json.dumps(value))
