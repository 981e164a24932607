"""Unit tests of the configuration validator (no server): every rule, with the exact line and
column it reports, and fuzzing that it never raises and always points inside the text."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowgate.configs.base import (
    InvalidConfig,
    base_config_yaml,
    check_collector_yaml,
    require_valid,
)
from flowgate.configs.validation import (
    EMPTY,
    MAX_CONFIG_BYTES,
    MAX_ERRORS,
    ConfigError,
    ValidationResult,
    components_from_agent_state,
    unavailable_components,
    validate,
)
from flowgate.core.errors import ConfigRejected

VALID = """\
receivers:
  otlp:
    protocols:
      grpc: {}
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
"""


def cfg(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def errors(text: str, available: Any = None) -> list[tuple[int, int, str]]:
    return [(e.line, e.column, e.message) for e in validate(text, available).errors]


def only(text: str, available: Any = None) -> ConfigError:
    found = validate(text, available).errors
    assert len(found) == 1, found
    return found[0]


def points_at(text: str, error: ConfigError, snippet: str) -> None:
    """The error's position is where ``snippet`` starts in the text."""
    line = text.split("\n")[error.line - 1]
    assert line[error.column - 1 :].startswith(snippet), (error, line)


def pipelines(body: str, head: str = "") -> str:
    """VALID's components with other pipelines (``body`` indented under service.pipelines)."""
    base = VALID.split("service:")[0]
    return base + head + "service:\n  pipelines:\n" + textwrap.indent(cfg(body), "    ")


# -- valid configurations ------------------------------------------------------------------------


def test_a_valid_config_has_no_errors_and_its_document() -> None:
    result = validate(VALID)
    assert result.ok and result.errors == []
    assert result.document == yaml.safe_load(VALID)
    assert result.components["receivers"] == {"otlp": (2, 3)}
    assert result.components["exporters"] == {"debug": (8, 3)}


def test_the_base_config_is_valid() -> None:
    text = base_config_yaml()
    assert validate(text).ok
    available = {
        "receivers": {"otlp"},
        "processors": {"batch", "memory_limiter"},
        "exporters": {"otlp", "debug"},
        "extensions": {"health_check"},
    }
    assert validate(text, available).ok
    assert errors(text, {**available, "extensions": set()}) == [
        (
            30,
            3,
            "extension 'health_check': type 'health_check' is not available "
            "(this collector has no extension of that type)",
        )
    ]


def test_valid_variants() -> None:
    text = cfg("""
        receivers:
          otlp/a/b: &recv
            protocols: {grpc: {}}
          otlp/日本: *recv
          "otlp/quoted": {}
        processors:
        connectors: {}
        extensions:
          health_check:
        exporters:
          debug: &exp {verbosity: basic}
          debug/2:
            <<: *exp
            verbosity: detailed
          debug/unused: {}
        service:
          extensions: [health_check]
          telemetry:
            logs: {level: warn}
          pipelines:
            traces: &pipe
              receivers: [otlp/a/b, otlp/日本, otlp/quoted, otlp/a/b]
              exporters: [debug, debug/2]
            metrics/x: *pipe
            logs:
              receivers: [otlp/a/b]
              processors: []
              exporters: [debug]
            profiles:
              receivers: [otlp/a/b]
              exporters: [debug]
    """)
    result = validate(text)
    assert result.ok, result.errors
    assert result.document is not None
    assert result.document["exporters"]["debug/2"] == {"verbosity": "detailed"}
    assert result.document["service"]["pipelines"]["metrics/x"]["exporters"] == ["debug", "debug/2"]


def test_a_type_of_63_characters_and_a_name_of_1024_are_allowed() -> None:
    def with_processor(cid: str) -> str:  # an explicit key: YAML limits simple keys to 1024
        return VALID.replace("  batch: {}", f"  batch: {{}}\n  ? {cid}\n  : {{}}")

    assert validate(with_processor("a" * 63)).ok
    assert validate(with_processor("batch/" + "n" * 1024)).ok
    error = only(with_processor("a" * 64))
    assert (error.line, error.column) == (7, 5)
    assert "at most 63 characters" in error.message
    assert "longer than 1024" in only(with_processor("batch/" + "n" * 1025)).message


# -- YAML ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("receivers: [unclosed", 1, 21, "not valid YAML"),
        ("receivers:\n  otlp: {}\n  bad: [1, 2\nexporters: {}\n", 4, 10, "not valid YAML"),
        ("receivers:\n  otlp:\n\tgrpc: {}\n", 3, 1, "cannot start any token"),
        ("receivers:\n  otlp\n    grpc: {}\n", 3, 9, "mapping values are not allowed"),
        ("a: *nowhere\n", 1, 4, "undefined alias"),
        ("a: 1\n---\nb: 2\n", 2, 1, "a single YAML document"),
        ("a: b\nc: x\x00y\n", 2, 5, "character #x0000 is not allowed"),
        ("a: b\r\nc: \x07\n", 2, 4, "character #x0007 is not allowed"),
    ],
)
def test_yaml_errors_point_at_the_parser_position(
    text: str, line: int, column: int, words: str
) -> None:
    error = only(text)
    assert (error.line, error.column) == (line, column), error
    assert words in error.message


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n...\n"])
def test_an_empty_config_is_refused(text: str) -> None:
    assert errors(text) == [(1, 1, EMPTY)]


def test_the_top_must_be_a_mapping() -> None:
    assert errors("- a\n- b\n") == [
        (1, 1, "the configuration must be a YAML mapping of sections, not a list")
    ]
    assert errors("just a string") == [
        (1, 1, "the configuration must be a YAML mapping of sections, not a string 'just a string'")
    ]


def test_size_limit() -> None:
    filler = "# " + "x" * 1000 + "\n"
    text = VALID + filler * (MAX_CONFIG_BYTES // len(filler))
    assert validate(text).ok
    text += "#" * (MAX_CONFIG_BYTES - len(text.encode()) + 1)
    assert errors(text) == [(1, 1, f"the configuration is larger than {MAX_CONFIG_BYTES} bytes")]
    # Counted in UTF-8 bytes, not characters.
    assert not validate("# " + "é" * (MAX_CONFIG_BYTES // 2)).ok


def test_nesting_depth_limit() -> None:
    def nested(levels: int) -> str:  # the top mapping is one level, each list one more
        return "receivers: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"

    assert not any("nested" in m for _, _, m in errors(nested(64)))
    assert errors(nested(65)) == [(1, 75, "the YAML is nested too deeply (more than 64 levels)")]
    assert "nested too deeply" in only("[" * 100_000 + "]" * 100_000).message


def test_alias_bomb_is_refused_before_expansion() -> None:
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        rows.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = "\n".join(rows) + "\n"
    error = only(text)
    assert error.message == "aliases repeat more than 100000 nodes (alias expansion limit)"
    assert error.line == 5  # a4 is the first to repeat over 100,000 nodes
    points_at(text, error, "*a3")
    # A config with a few anchors is fine.
    assert validate(
        cfg("""
        receivers: {otlp: &o {protocols: {grpc: {}, http: {}}}, otlp/2: *o}
        exporters: {debug: {}}
        service: {pipelines: {traces: {receivers: [otlp, otlp/2], exporters: [debug]}}}
    """)
    ).ok


def test_merge_chains_are_bounded_and_never_raise() -> None:
    rows = ["m0: &m0 {k: 0}"] + [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, 600)]
    error = only("\n".join(rows) + "\n")
    assert "alias expansion limit" in error.message


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert errors("a: &x [1, *x]\n") == [(1, 11, "alias *x refers to a node containing it")]
    assert errors("a: &x {b: *x}\n") == [(1, 11, "alias *x refers to a node containing it")]


def test_an_anchor_may_be_defined_again() -> None:
    text = VALID.replace("  debug: {}", "  debug: &d {}\n  debug/2: &d {verbosity: basic}")
    text += "    logs: {receivers: [otlp], exporters: [debug]}\nx: *d\n"
    assert errors(text) == [
        (
            17,
            1,
            "unknown top-level key 'x' (allowed: receivers, processors, exporters, "
            "connectors, extensions, service)",
        )
    ]


@pytest.mark.parametrize(
    ("value", "column"),
    [
        ("!!python/object/apply:os.system ['true']", 6),
        ("!!python/name:os.system", 6),
        ("!custom thing", 6),
        ("!!binary aGk=", 6),
        ("!!set {a, b}", 6),
        ("!!omap [a: 1]", 6),
        ("[!!map x]", 7),
        ("!!seq {a: 1}", 6),
    ],
)
def test_tags_outside_the_core_schema_are_refused(value: str, column: int) -> None:
    text = f"a:\n  b: {value}\n"
    error = only(text)
    assert (error.line, error.column) == (2, column)
    assert "is not allowed" in error.message and "YAML tag" in error.message


def test_core_tags_are_allowed() -> None:
    text = VALID.replace("receivers: [otlp]", "receivers: [!!str otlp, ! otlp]").replace(
        "  batch: {}", "  batch: !!map {send_batch_size: !!int 10, timeout: !!str 5s}"
    )
    assert validate(text).ok


def test_duplicate_keys_are_reported_at_the_second() -> None:
    text = VALID.replace("  batch: {}", "  batch: {}\n  batch:\n    timeout: 1s")
    assert errors(text) == [(7, 3, "duplicate key 'batch' (first at line 6)")]
    text = VALID.replace("grpc: {}", "grpc: {}\n      grpc: {endpoint: x}")
    assert errors(text) == [(5, 7, "duplicate key 'grpc' (first at line 4)")]
    # Keys are compared as written: "a" and a are the same key, as for the collector.
    assert errors('a: 1\n"a": 2\n') == [(2, 1, "duplicate key 'a' (first at line 1)")]
    assert errors(VALID + "receivers: {}\n")[0] == (
        15,
        1,
        "duplicate key 'receivers' (first at line 1)",
    )


def test_merged_keys_are_not_duplicates() -> None:
    text = VALID.replace(
        "  debug: {}", "  debug: &d {verbosity: basic}\n  debug/2: {<<: *d, verbosity: detailed}"
    )
    assert validate(text).ok


def test_keys_must_be_plain_and_merges_must_be_mappings() -> None:
    assert errors("a:\n  ? [x]\n  : 1\n") == [
        (2, 5, "a mapping key must be a plain value, not a collection")
    ]
    assert errors("a:\n  <<: 1\n") == [
        (2, 7, "a merge key (<<) takes a mapping or a list of mappings")
    ]
    assert errors("a:\n  <<: [{x: 1}, 2]\n") == [
        (2, 7, "a merge key (<<) takes a mapping or a list of mappings")
    ]


def test_values_must_be_readable() -> None:
    text = VALID.replace("  batch: {}", "  batch:\n    when: 2001-13-45")
    assert errors(text) == [(7, 11, "invalid value '2001-13-45': month must be in 1..12")]
    assert errors("a: !!int abc\n")[0][:2] == (1, 4)
    # "=" and "<<" as values are strings, as the collector reads them.
    text = VALID.replace("  batch: {}", "  batch: {a: =, b: [<<]}")
    document = validate(text).document
    assert document is not None
    assert document["processors"]["batch"] == {"a": "=", "b": ["<<"]}


# -- Collector shape ---------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    text = VALID + "foo: 1\n"
    error = only(text)
    assert (error.line, error.column) == (15, 1)
    assert error.message.startswith("unknown top-level key 'foo'")
    text = VALID.replace("receivers:\n  otlp", "Receivers:\n  otlp")
    assert errors(text) == [
        (
            1,
            1,
            "unknown top-level key 'Receivers' (allowed: receivers, processors, exporters, "
            "connectors, extensions, service); did you mean 'receivers'?",
        ),
        (
            12,
            19,
            "pipeline 'traces' uses receiver 'otlp', which is not defined under receivers "
            "or connectors",
        ),
    ]


def test_missing_and_empty_sections() -> None:
    assert errors("receivers: {}\n") == [
        (1, 1, "missing section 'exporters': a configuration needs at least one exporter"),
        (1, 1, "missing section 'service': a configuration needs service.pipelines"),
        (1, 1, "section 'receivers' is empty: a configuration needs at least one receiver"),
    ]
    text = (
        "exporters: {debug: {}}\nreceivers:\nservice: {pipelines: {traces: {exporters: [debug]}}}\n"
    )
    assert errors(text) == [
        (2, 1, "section 'receivers' is empty: a configuration needs at least one receiver"),
        (3, 23, "pipeline 'traces' must have at least one receiver"),
    ]


def test_a_section_must_be_a_mapping() -> None:
    text = VALID.replace("processors:\n  batch: {}", "processors: [batch]")
    assert errors(text)[0] == (
        5,
        13,
        "processors must be a mapping of component ids to their settings",
    )
    # Its components count as defined: no follow-on "not defined" error.
    assert len(errors(text)) == 1


@pytest.mark.parametrize(
    ("cid", "problem"),
    [
        ("1otlp", "the type '1otlp' must start with a letter"),
        ("ot-lp", "the type 'ot-lp' must start with a letter"),
        ("a" * 64, "at most 63 characters"),
        ("/x", "the type '' must start with a letter"),
        ('""', "an id must not be empty"),
        ("batch/", "the name after '/' must not be empty"),
        ('"batch/a b"', "must not contain spaces, control characters or symbols"),
        ('"batch/a\\tb"', "must not contain spaces"),
        ("batch/a$b", "must not contain spaces, control characters or symbols"),
        ("batch/a+b", "symbols"),
        ('"batch /a"', "the type 'batch ' must start with a letter"),
        ("123", "the type '123' must start"),
    ],
)
def test_component_ids(cid: str, problem: str) -> None:
    text = VALID.replace("  batch: {}", f"  batch: {{}}\n  {cid}: {{}}")
    error = only(text)
    assert (error.line, error.column) == (7, 3)
    assert error.message.startswith("processor id ") and problem in error.message, error


def test_component_settings_must_be_a_mapping() -> None:
    for value in ("hello", "[1]", "5"):
        text = VALID.replace("  batch: {}", f"  batch: {value}")
        assert errors(text) == [
            (6, 10, "processor 'batch': its settings must be a mapping (or empty)")
        ]
    assert validate(VALID.replace("  batch: {}", "  batch:")).ok


def test_service_keys() -> None:
    text = VALID.replace("service:\n", "service:\n  foo: 1\n  telemetry: {logs: {level: info}}\n")
    assert errors(text) == [
        (10, 3, "unknown key 'foo' under service (allowed: extensions, pipelines, telemetry)")
    ]
    text = VALID.replace("service:\n", "service:\n  telemetry: 5\n")
    assert errors(text) == [(10, 14, "service.telemetry must be a mapping")]
    text = VALID.split("service:")[0] + "service: [a]\n"
    assert errors(text) == [(9, 10, "service must be a mapping (extensions, pipelines, telemetry)")]


@pytest.mark.parametrize(
    ("service", "line", "column"),
    [
        ("service:\n", 9, 1),
        ("service: {}\n", 9, 1),
        ("service:\n  pipelines:\n", 10, 3),
        ("service:\n  pipelines: {}\n", 10, 3),
    ],
)
def test_pipelines_must_not_be_empty(service: str, line: int, column: int) -> None:
    text = VALID.split("service:")[0] + service
    assert errors(text) == [(line, column, "service.pipelines must define at least one pipeline")]


def test_pipelines_must_be_a_mapping() -> None:
    text = VALID.split("service:")[0] + "service:\n  pipelines: [traces]\n"
    assert errors(text) == [
        (10, 14, "service.pipelines must be a mapping of pipeline ids to pipelines")
    ]


@pytest.mark.parametrize(
    ("pid", "problem"),
    [
        ("foo", "the signal 'foo' must be one of traces, metrics, logs, profiles"),
        ("Traces", "the signal 'Traces' must be one of"),
        ("traces/", "the name after '/' must not be empty"),
        ('"traces/a b"', "must not contain spaces"),
        ("/x", "the signal '' must be one of"),
    ],
)
def test_pipeline_ids(pid: str, problem: str) -> None:
    text = pipelines(f"""
        {pid}:
          receivers: [otlp]
          exporters: [debug]
    """)
    error = only(text)
    assert (error.line, error.column) == (11, 5)
    assert error.message.startswith("pipeline id ") and problem in error.message, error


def test_pipeline_keys_and_required_roles() -> None:
    text = pipelines("""
        traces:
          receivers: [otlp]
          exporter: [debug]
    """)
    # The misspelt key is the error, not the missing exporters it causes.
    assert errors(text) == [
        (
            13,
            7,
            "unknown key 'exporter' in pipeline 'traces' (allowed: receivers, processors, "
            "exporters); did you mean 'exporters'?",
        ),
    ]
    text = pipelines("""
        traces:
          receivers: [otlp]
          exporters: [debug]
          extra: [debug]
    """)
    assert errors(text) == [
        (
            14,
            7,
            "unknown key 'extra' in pipeline 'traces' (allowed: receivers, processors, exporters)",
        ),
    ]
    text = pipelines("traces: {receivers: [otlp], exporters: [debug]}\n").replace(
        "  pipelines:", "  Pipelines:"
    )
    assert errors(text) == [
        (
            10,
            3,
            "unknown key 'Pipelines' under service (allowed: extensions, pipelines, telemetry); "
            "did you mean 'pipelines'?",
        ),
    ]
    text = pipelines("""
        logs:
          exporters: [debug]
        metrics:
          receivers: [otlp]
          exporters: []
        traces:
    """)
    assert errors(text) == [
        (11, 5, "pipeline 'logs' must have at least one receiver"),
        (13, 5, "pipeline 'metrics' must have at least one exporter"),
        (16, 5, "pipeline 'traces' must have at least one receiver"),
        (16, 5, "pipeline 'traces' must have at least one exporter"),
    ]
    text = pipelines("traces: [otlp]\n")
    assert errors(text) == [
        (11, 13, "pipeline 'traces' must be a mapping of receivers, processors, exporters")
    ]


def test_pipelines_reference_defined_components() -> None:
    text = pipelines("""
        traces:
          receivers: [otlp, nope]
          processors: [batch, debug]
          exporters: [debug, otlp]
    """)
    assert errors(text) == [
        (
            12,
            25,
            "pipeline 'traces' uses receiver 'nope', which is not defined under receivers "
            "or connectors",
        ),
        (13, 27, "pipeline 'traces' uses processor 'debug', which is not defined under processors"),
        (
            14,
            26,
            "pipeline 'traces' uses exporter 'otlp', which is not defined under exporters "
            "or connectors",
        ),
    ]


def test_pipeline_lists_must_hold_ids() -> None:
    text = pipelines("""
        traces:
          receivers: otlp
          processors: [batch, 5, {x: 1}]
          exporters: [debug, null]
    """)
    assert errors(text) == [
        (
            12,
            18,
            "pipeline 'traces': receivers must be a list of component ids, not a string 'otlp'",
        ),
        (13, 27, "pipeline 'traces': processors must be a list of component ids, not a number '5'"),
        (13, 30, "pipeline 'traces': processors must be a list of component ids, not a mapping"),
        (14, 26, "pipeline 'traces': exporters must be a list of component ids, not null 'null'"),
    ]


def test_service_extensions_are_defined() -> None:
    head = "extensions:\n  health_check: {}\n"
    text = pipelines("traces: {receivers: [otlp], exporters: [debug]}\n", head=head)
    ok = text.replace("service:\n", "service:\n  extensions: [health_check]\n")
    assert validate(ok).ok
    bad = text.replace("service:\n", "service:\n  extensions: [health_check, pprof]\n")
    assert errors(bad) == [
        (12, 30, "service.extensions uses extension 'pprof', which is not defined under extensions")
    ]
    bad = text.replace("service:\n", "service:\n  extensions: pprof\n")
    assert errors(bad) == [
        (12, 15, "service.extensions must be a list of component ids, not a string 'pprof'")
    ]
    assert (
        "which is not defined"
        in only(VALID.replace("service:\n", "service:\n  extensions: [x]\n")).message
    )


# -- connectors ----------------------------------------------------------------------------------

CONNECTED = VALID.split("service:")[0] + "connectors:\n  CONNECTOR: {}\nservice:\n  pipelines:\n"


def connected(connector: str, body: str) -> str:
    return CONNECTED.replace("CONNECTOR", connector) + textwrap.indent(cfg(body), "    ")


def test_a_connector_joins_two_pipelines() -> None:
    text = connected(
        "forward",
        """
        traces:
          receivers: [otlp]
          exporters: [forward]
        traces/2:
          receivers: [forward]
          exporters: [debug]
    """,
    )
    assert validate(text).ok
    text = connected(
        "spanmetrics",
        """
        traces:
          receivers: [otlp]
          exporters: [spanmetrics, debug]
        metrics:
          receivers: [spanmetrics]
          exporters: [debug]
    """,
    )
    assert validate(text).ok


def test_a_connector_must_be_exporter_and_receiver() -> None:
    text = connected(
        "forward",
        """
        traces:
          receivers: [otlp]
          exporters: [debug, forward]
    """,
    )
    assert errors(text) == [
        (
            15,
            26,
            "connector 'forward' is used as an exporter (pipeline 'traces') but as a "
            "receiver in no pipeline: a connector must be both",
        )
    ]
    text = connected(
        "forward",
        """
        traces:
          receivers: [forward]
          exporters: [debug]
    """,
    )
    assert errors(text) == [
        (
            14,
            19,
            "connector 'forward' is used as a receiver (pipeline 'traces') but as an "
            "exporter in no pipeline: a connector must be both",
        )
    ]
    # Defined and unused is fine; as a processor it is not one.
    assert validate(connected("forward", "traces: {receivers: [otlp], exporters: [debug]}\n")).ok
    text = connected(
        "forward", "traces: {receivers: [otlp], processors: [forward], exporters: [debug]}\n"
    )
    assert "uses processor 'forward', which is not defined" in only(text).message


def test_connector_signals_of_known_types() -> None:
    text = connected(
        "spanmetrics",
        """
        logs:
          receivers: [otlp]
          exporters: [spanmetrics]
        metrics:
          receivers: [spanmetrics]
          exporters: [debug]
    """,
    )
    assert errors(text) == [
        (
            15,
            19,
            "connector 'spanmetrics' exports from logs pipeline 'logs', but no pipeline it "
            "is a receiver in takes what a spanmetrics connector makes of logs (traces -> metrics)",
        ),
        (
            17,
            19,
            "connector 'spanmetrics' receives into metrics pipeline 'metrics', but no "
            "pipeline it is an exporter in gives a spanmetrics connector what it needs for metrics "
            "(traces -> metrics)",
        ),
    ]
    # An unknown type is checked for both roles only.
    text = connected(
        "mine",
        """
        logs:
          receivers: [otlp]
          exporters: [mine]
        metrics:
          receivers: [mine]
          exporters: [debug]
    """,
    )
    assert validate(text).ok


def test_connectors_must_not_form_a_cycle() -> None:
    text = connected(
        "forward",
        """
        traces:
          receivers: [otlp, forward]
          exporters: [forward]
    """,
    )
    assert errors(text) == [
        (14, 25, "connector 'forward' closes a cycle of pipelines: traces -> traces")
    ]
    text = CONNECTED.replace("CONNECTOR", "forward: {}\n  forward/b") + textwrap.indent(
        cfg("""
        traces/a:
          receivers: [otlp, forward/b]
          exporters: [forward]
        traces/b:
          receivers: [forward]
          exporters: [forward/b]
    """),
        "    ",
    )
    assert errors(text) == [
        (
            15,
            25,
            "connector 'forward/b' closes a cycle of pipelines: traces/a -> traces/b -> traces/a",
        )
    ]


def test_a_long_chain_of_connected_pipelines_does_not_recurse() -> None:
    n = 3000
    head = VALID.split("service:")[0] + "connectors:\n"
    head += "".join(f"  forward/{i}: {{}}\n" for i in range(n))
    body = "traces/0: {receivers: [otlp], exporters: [forward/0]}\n"
    body += "".join(
        f"traces/{i}: {{receivers: [forward/{i - 1}], exporters: [forward/{i}]}}\n"
        for i in range(1, n)
    )
    body += f"traces/{n}: {{receivers: [forward/{n - 1}], exporters: [debug]}}\n"
    assert validate(head + "service:\n  pipelines:\n" + textwrap.indent(body, "    ")).ok


def test_a_connector_id_must_differ_from_receivers_and_exporters() -> None:
    text = (
        VALID.split("service:")[0] + "connectors:\n  otlp: {}\n" + VALID[VALID.index("service:") :]
    )
    assert errors(text) == [
        (
            10,
            3,
            "connector 'otlp' has the id of a receiver too: pipelines could not tell them "
            "apart (rename one)",
        )
    ]


# -- available components ------------------------------------------------------------------------

AVAILABLE = {
    "receivers": {"otlp"},
    "processors": {"batch"},
    "exporters": {"debug"},
    "connectors": set(),
    "extensions": set(),
}


def test_component_types_must_be_available() -> None:
    assert validate(VALID, AVAILABLE).ok
    text = VALID.replace("  debug: {}", "  debug: {}\n  otlphttp/unused: {}")
    assert errors(text, AVAILABLE) == [
        (
            9,
            3,
            "exporter 'otlphttp/unused': type 'otlphttp' is not available "
            "(this collector has no exporter of that type)",
        )
    ]
    assert errors(VALID, {**AVAILABLE, "processors": {"memory_limiter"}}) == [
        (
            6,
            3,
            "processor 'batch': type 'batch' is not available "
            "(this collector has no processor of that type)",
        )
    ]
    # A named component needs its type; a kind left out is not checked.
    text = VALID.replace("  batch: {}", "  batch/small: {}").replace("[batch]", "[batch/small]")
    assert validate(text, AVAILABLE).ok
    assert validate(VALID, {"receivers": {"otlp"}}).ok


def test_availability_is_checked_only_when_the_shape_is_valid() -> None:
    text = VALID + "foo: 1\n"
    assert [m for _, _, m in errors(text, {"receivers": set()})] == [
        "unknown top-level key 'foo' (allowed: receivers, processors, exporters, connectors, "
        "extensions, service)"
    ]


def test_unavailable_components_from_a_result() -> None:
    result = validate(VALID)
    assert unavailable_components(result.components, AVAILABLE) == []
    assert unavailable_components(result.components, {"exporters": {"otlp"}}) == [
        ConfigError(
            8,
            3,
            "exporter 'debug': type 'debug' is not available "
            "(this collector has no exporter of that type)",
        )
    ]


def test_components_from_agent_state() -> None:
    def kind(*types: str) -> dict[str, Any]:
        return {
            "metadata": {},
            "components": {
                t: {"metadata": {"code.namespace": f"x/{t}"}, "components": {}} for t in types
            },
        }

    state = {
        "hash": "ab",
        "components": {
            "receivers": kind("otlp", "filelog"),
            "processors": kind("batch"),
            "exporters": kind("debug"),
            "extensions": kind(),
            "connectors": kind("forward"),
        },
    }
    assert components_from_agent_state(state) == {
        "receivers": {"otlp", "filelog"},
        "processors": {"batch"},
        "exporters": {"debug"},
        "extensions": set(),
        "connectors": {"forward"},
    }
    assert components_from_agent_state(None) is None
    assert components_from_agent_state({"hash": "ab", "components": None}) is None
    assert components_from_agent_state({"hash": "ab", "components": {"other": kind("x")}}) is None
    partial = {"hash": "ab", "components": {"receivers": kind("otlp"), "exporters": "junk"}}
    assert components_from_agent_state(partial) == {"receivers": {"otlp"}}


# -- results ---------------------------------------------------------------------------------------


def test_errors_are_sorted_and_capped() -> None:
    bad = "".join(f"  {i}x: {{}}\n" for i in range(2 * MAX_ERRORS))
    text = VALID.replace("  batch: {}\n", "  batch: {}\n" + bad)
    found = validate(text).errors
    assert len(found) == MAX_ERRORS
    assert [e.line for e in found] == list(range(7, 7 + MAX_ERRORS))


def test_errors_are_sorted_by_position_not_by_rule() -> None:
    text = cfg("""
        service:
          extensions: [nope]
          pipelines:
            traces: {receivers: [otlp], exporters: [debug]}
        receivers:
          otlp: {}
          1x: {}
        exporters:
          debug: {}
    """)
    assert [(line, column) for line, column, _ in errors(text)] == [(2, 16), (7, 3)]


def test_check_collector_yaml_says_where() -> None:
    assert check_collector_yaml(VALID) == yaml.safe_load(VALID)
    with pytest.raises(InvalidConfig) as caught:
        check_collector_yaml(VALID + "foo: 1\n")
    assert str(caught.value).endswith("(at line 15, column 1)")
    assert str(caught.value).startswith("unknown top-level key 'foo'")


def test_require_valid_raises_the_422_with_every_error() -> None:
    assert require_valid(VALID, AVAILABLE) == yaml.safe_load(VALID)
    with pytest.raises(ConfigRejected) as caught:
        require_valid(VALID + "foo: 1\nbar: 2\n")
    assert caught.value.status_code == 422
    assert caught.value.detail == (
        "The configuration is not valid: unknown top-level key 'foo' (allowed: receivers, "
        "processors, exporters, connectors, extensions, service) (at line 15, column 1) and 1 more"
    )
    assert [(e["line"], e["column"]) for e in caught.value.errors] == [(15, 1), (16, 1)]


# -- fuzzing ---------------------------------------------------------------------------------------

_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def assert_inside(text: str, result: ValidationResult) -> None:
    lines = _BREAKS.split(text)
    assert result.ok == (not result.errors) == (result.document is not None)
    for e in result.errors:
        assert 1 <= e.line <= len(lines), (e, len(lines))
        assert 1 <= e.column <= len(lines[e.line - 1]) + 1, (e, lines[e.line - 1])
        assert e.message


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_char = st.characters(codec=None, exclude_categories=())  # NUL, lone surrogates, breaks
yaml_bits = st.sampled_from(
    [
        "receivers",
        "exporters",
        "service",
        "pipelines",
        "traces",
        "otlp",
        "debug/x",
        ":",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "!x ",
        "? ",
        "'",
        '"',
        "#",
        "---\n",
        "\n",
        "\n  ",
        "\n    ",
        "\t",
        "|\n",
        ">-\n",
        "\r",
        "\u2028",
        "\x85",
        "\x00",
        "2001-13-45",
        "~",
        "%YAML 1.1\n",
        "\ufeff",
        "é",
        "日本",
    ]
)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.text(alphabet=any_char, max_size=100)))
def test_fuzz_arbitrary_text(text: str) -> None:
    assert_inside(text, validate(text))


@FUZZ
@given(st.lists(yaml_bits, max_size=60).map("".join))
def test_fuzz_yaml_like_text(text: str) -> None:
    assert_inside(text, validate(text, AVAILABLE))


@FUZZ
@given(st.integers(0, len(VALID)), st.integers(0, 20), st.lists(yaml_bits, max_size=5))
def test_fuzz_edits_of_a_valid_config(at: int, cut: int, inserted: list[str]) -> None:
    text = VALID[:at] + "".join(inserted) + VALID[at + cut :]
    assert_inside(text, validate(text, AVAILABLE))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(["receivers", "exporters", "service", "x"]), json_like))
def test_fuzz_yaml_documents(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    result = validate(text)
    assert_inside(text, result)
    if result.ok:
        assert result.document == yaml.safe_load(text)
