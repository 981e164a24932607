"""Label selectors: the parser, the matcher, the label rules, and that SQL agrees with Python.

The property test writes random label sets through the repository (so the ``gateway_labels``
mirror is exercised too) into a real database migrated to the current schema, SQLite and
PostgreSQL, and checks that the list condition and the count return exactly the gateways
``Selector.matches`` accepts, and never another organisation's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flowgate.core.db import create_engine, utcnow
from flowgate.core.migrate import upgrade
from flowgate.gateways import labels, repository
from flowgate.gateways.models import Gateway
from flowgate.gateways.selectors import Op, Requirement, Selector, SelectorError, parse
from flowgate.orgs.models import Organization
from tests.conftest import database_for
from tests.support.server import drop_pg_database

# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env=prod", [("env", Op.EQUALS, ("prod",))]),
        ("env==prod", [("env", Op.EQUALS, ("prod",))]),
        ("env!=prod", [("env", Op.NOT_EQUALS, ("prod",))]),
        ("env in (prod,dev)", [("env", Op.IN, ("dev", "prod"))]),
        ("env notin (prod)", [("env", Op.NOT_IN, ("prod",))]),
        ("env", [("env", Op.EXISTS, ())]),
        ("!env", [("env", Op.DOES_NOT_EXIST, ())]),
        ("env=", [("env", Op.EQUALS, ("",))]),
        ("env in (,a)", [("env", Op.IN, ("", "a"))]),
        ("env in (a,)", [("env", Op.IN, ("", "a"))]),
        ("env in (a,,b)", [("env", Op.IN, ("", "a", "b"))]),
        ("k=in", [("k", Op.EQUALS, ("in",))]),
        ("example.com/tier=web", [("example.com/tier", Op.EQUALS, ("web",))]),
        (
            " env = prod ,\tregion!=eu ,tier , ! canary,x in( a , b ) ",
            [
                ("env", Op.EQUALS, ("prod",)),
                ("region", Op.NOT_EQUALS, ("eu",)),
                ("tier", Op.EXISTS, ()),
                ("canary", Op.DOES_NOT_EXIST, ()),
                ("x", Op.IN, ("a", "b")),
            ],
        ),
        ("", []),
        ("  \t ", []),
    ],
)
def test_parse(text: str, expected: list[tuple[str, Op, tuple[str, ...]]]) -> None:
    selector = parse(text)
    assert [(r.key, r.op, r.values) for r in selector.requirements] == expected
    assert parse(str(selector)) == selector  # the canonical text parses back to the same


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        (",", 0, "expected a label key, found ','"),
        ("env=prod,", 9, "a requirement after ','"),
        ("env=prod,,x", 9, "expected a label key, found ','"),
        ("env in ()", 8, "must not be empty"),
        ("env in a", 7, "expected '(' after 'in' or 'notin'"),
        ("env in (a", 9, "',' or ')' in a value set, found the end"),
        ("env in (a b)", 10, "found 'b'"),
        ("env notin", 9, "'(' after 'in' or 'notin'"),
        ("!env=prod", 4, "expected ',' or the end of the selector, found '='"),
        ("!", 1, "expected a label key, found the end"),
        ("env > 1", 4, "operator '>' is not supported"),
        ("env < 1", 4, "operator '<' is not supported"),
        ("in=1", 0, "expected a label key, found 'in'"),
        ("=v", 0, "expected a label key, found '='"),
        ("env=prod x", 9, "found 'x'"),
        ("env=(", 4, "expected a label value, found '('"),
        ("bad key=1", 4, "found 'key'"),
        ("a/b/c", 0, "at most one '/'"),
        ("Upper.com/a", 0, "DNS subdomain"),
        ("/a", 0, "prefix before '/' must not be empty"),
        ("a/", 0, "name must not be empty"),
        ("-a", 0, "start and end with a letter or digit"),
        ("k" * 64, 0, "at most 63 characters"),
        ("env=prod,tier=-x", 14, "invalid label value '-x'"),
        ("env=" + "v" * 64, 4, "at most 63 characters"),
        ("a=b\x00", 2, "invalid label value"),
        ("x" * 5000, 4096, "at most 4096 characters"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse(text)
    assert caught.value.position == position
    assert fragment in caught.value.message
    assert caught.value.status_code == 422
    assert caught.value.detail.startswith("Invalid selector: ")
    assert caught.value.detail.endswith(f"(at position {position})")


# -- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "matches", "misses"),
    [
        ("env=prod", [{"env": "prod"}, {"env": "prod", "x": "1"}], [{}, {"env": "dev"}]),
        ("env!=prod", [{}, {"env": "dev"}, {"x": "prod"}], [{"env": "prod"}]),
        ("env in (a,b)", [{"env": "a"}, {"env": "b"}], [{}, {"env": "c"}, {"a": "a"}]),
        ("env notin (a,b)", [{}, {"env": "c"}], [{"env": "a"}, {"env": "b"}]),
        ("env", [{"env": ""}, {"env": "x"}], [{}, {"environment": "x"}]),
        ("!env", [{}, {"other": "env"}], [{"env": ""}]),
        ("env=", [{"env": ""}], [{}, {"env": "x"}]),
        ("", [{}, {"any": "thing"}], []),
        (
            "env=prod,region!=eu,tier",
            [{"env": "prod", "tier": "web"}, {"env": "prod", "tier": "", "region": "us"}],
            [{"env": "prod"}, {"env": "prod", "tier": "web", "region": "eu"}, {"tier": "x"}],
        ),
    ],
)
def test_matches(text: str, matches: list[dict[str, str]], misses: list[dict[str, str]]) -> None:
    selector = parse(text)
    assert all(selector.matches(m) for m in matches)
    assert not any(selector.matches(m) for m in misses)


# -- label rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "A9", "a.b-c_d", "k" * 63, "example.com/a", "a-b.c9/x", ("d" * 63 + ".") * 3 + "d/x"],
)
def test_valid_keys(key: str) -> None:
    assert labels.key_problem(key) is None


@pytest.mark.parametrize(
    "key",
    ["", "-a", "a-", "a b", "k" * 64, "a/b/c", "/a", "a/", "A.com/x", "a..b/x", "é", "a\x00"],
)
def test_invalid_keys(key: str) -> None:
    assert labels.key_problem(key) is not None


def test_values() -> None:
    for value in ("", "a", "A-b_c.9", "v" * 63):
        assert labels.value_problem(value) is None
    for value in ("-a", "a ", "v" * 64, "a/b", "ü"):
        assert labels.value_problem(value) is not None


def test_labels_from_agent_attributes() -> None:
    found, problems = labels.from_attributes(
        {
            "flowgate.label.env": "prod",
            "flowgate.label.example.com/tier": "edge",
            "flowgate.label.canary": True,
            "flowgate.label.shard": 7,
            "flowgate.label.bad key": "x",
            "flowgate.label.region": "not valid!",
            "flowgate.label.nested": {"a": 1},
            "host.name": "h1",
        }
    )
    assert found == {"canary": "true", "env": "prod", "example.com/tier": "edge", "shard": "7"}
    assert len(problems) == 3


def test_layers() -> None:
    agent = {"env": "dev", "zone": "a"}
    manual = labels.manual_after_patch({"env": "prod", "team": "x"}, agent, {})
    assert labels.effective(agent, manual) == {"env": "prod", "team": "x"}
    # The agent changes its mind: people's keys stay, a new agent key shows.
    assert labels.effective({"env": "qa", "zone": "b", "rack": "7"}, manual) == {
        "env": "prod",
        "rack": "7",
        "team": "x",
    }
    # A later PATCH drops "team" (people's own key: gone) and keeps hiding "zone".
    manual = labels.manual_after_patch({"env": "prod"}, agent, manual)
    assert labels.effective({**agent, "team": "t"}, manual) == {"env": "prod", "team": "t"}
    assert labels.registration_labels({"a": "1"}, {"labels": {"a": "0", "b": "2"}}) == {
        "a": "1",
        "b": "2",
    }


# -- SQL == Python, on real databases -------------------------------------------------------------

KEYS = ["a", "b", "ex.io/c"]
VALUES = ["", "x", "y"]
label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
value_sets = st.lists(st.sampled_from(VALUES), min_size=1, max_size=3)
selector_keys = st.sampled_from([*KEYS, "unused"])
requirements = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", selector_keys, st.sampled_from(VALUES)),
    st.builds(lambda k, v: f"{k} == {v}", selector_keys, st.sampled_from(VALUES)),
    st.builds(lambda k, v: f"{k}!={v}", selector_keys, st.sampled_from(VALUES)),
    # "()" is an empty set (an error); a set of just the empty value is written "(,)".
    st.builds(lambda k, vs: f"{k} in ({','.join(vs) or ','})", selector_keys, value_sets),
    st.builds(lambda k, vs: f"{k} notin ({', '.join(vs) or ','})", selector_keys, value_sets),
    selector_keys,
    selector_keys.map(lambda k: f"!{k}"),
)
selector_texts = st.lists(requirements, max_size=4).map(",".join)


class LabelDb:
    """A migrated database with two organisations, reset per example."""

    def __init__(self, url: str) -> None:
        upgrade(url)
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.org, self.other = uuid.uuid4(), uuid.uuid4()
        self.run(self._orgs())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _orgs(self) -> None:
        async with self.sessions.begin() as session:
            for org_id in (self.org, self.other):
                session.add(Organization(id=org_id, name=f"org-{org_id.hex[:8]}"))

    async def load(self, org_sets: list[dict[str, str]], other_sets: list[dict[str, str]]) -> None:
        async with self.sessions.begin() as session:
            await session.execute(Gateway.__table__.delete())
            for org_id, sets in ((self.org, org_sets), (self.other, other_sets)):
                for i, label_set in enumerate(sets):
                    gateway = Gateway(org_id=org_id, instance_id=f"i{i}", name=f"gw-{i:02d}")
                    session.add(gateway)
                    await session.flush()
                    # Half through the agent layer, half through PATCH: both keep the mirror.
                    if i % 2:
                        await repository.set_agent_labels(session, gateway, label_set)
                    else:
                        await repository.set_manual_labels(session, gateway, label_set)

    async def query(
        self, selector: Selector, stored_as: dict[str, dict[str, str]]
    ) -> tuple[list[str], int, list[str]]:
        """(names the list returns, the count, names whose stored labels differ from
        ``stored_as``)."""
        rule = repository.HealthRule(utcnow(), 60, 300)
        async with self.sessions() as session:
            rows = await repository.page(
                session,
                self.org,
                repository.ListFilter(selector=selector),
                rule,
                limit=1000,
                after=None,
            )
            count = await repository.count_matching(session, self.org, selector)
            stored = await session.execute(
                select(Gateway.name, Gateway.labels).where(Gateway.org_id == self.org)
            )
            mismatched = [n for n, got in stored.all() if got != stored_as[n]]
        return [g.name for g in rows], count, mismatched

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()


@pytest.fixture(scope="module")
def label_db(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelDb]:
    tmp = tmp_path_factory.mktemp(f"selectors-{backend}")
    url, pg_name = database_for(backend, Path(tmp))
    db = LabelDb(url or f"sqlite+aiosqlite:///{tmp / 'labels.db'}")
    try:
        yield db
    finally:
        db.close()
        if pg_name:
            drop_pg_database(pg_name)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    org_sets=st.lists(label_sets, max_size=8),
    other_sets=st.lists(label_sets, max_size=3),
    text=selector_texts,
)
def test_sql_agrees_with_matches(
    label_db: LabelDb, org_sets: list[dict[str, str]], other_sets: list[dict[str, str]], text: str
) -> None:
    selector = parse(text)
    label_db.run(label_db.load(org_sets, other_sets))
    stored_as = {f"gw-{i:02d}": s for i, s in enumerate(org_sets)}
    expected = [f"gw-{i:02d}" for i, s in enumerate(org_sets) if selector.matches(s)]
    names, count, mismatched = label_db.run(label_db.query(selector, stored_as))
    assert mismatched == []
    assert names == expected, text
    assert count == len(expected), text


def test_requirement_text_round_trips() -> None:
    req = Requirement("k", Op.IN, ("",))
    assert parse(str(Selector((req,)))) == Selector((req,))


def test_postgres_connections_run_without_parallel_query(backend: str, label_db: LabelDb) -> None:
    """Every FlowGate connection to PostgreSQL (this engine is FlowGate's own) runs without
    parallel workers: starting them cost more than they saved on its index-range queries, and
    only without them does PostgreSQL merge two broad label ranges through the (org_id, key,
    gateway_id) index (bench/label_selectors.py, docs/benchmarks.md)."""
    if backend != "postgres":
        pytest.skip("a PostgreSQL setting")

    async def parallel_workers() -> str:
        async with label_db.sessions() as session:
            return str(await session.scalar(sql_text("SHOW max_parallel_workers_per_gather")))

    assert label_db.run(parallel_workers()) == "0"
