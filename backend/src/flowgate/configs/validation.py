"""Validation of OpenTelemetry Collector configurations, before FlowGate stores or sends one.

A pure module (no web framework, no database): :func:`validate` takes the YAML text and,
optionally, the component types a collector has, and returns every problem it finds with the
line and column (1-based, counted the way YAML counts: ``\\r\\n``, ``\\r``, ``\\n``, NEL, LS
and PS end a line) of the key or value at fault.

What is checked, in three stages (a stage runs only when the previous one found nothing, so a
broken document does not bury its real problem under follow-on errors):

1. **YAML** (:mod:`~flowgate.configs.yaml_source`): the text parses; at most
   :data:`MAX_CONFIG_BYTES`; one document; nesting at most 64 levels; aliases repeat at most
   100,000 nodes in total (an "alias bomb" is refused before it is expanded) and never refer
   to a node that contains them; explicit tags only from the YAML core schema (no
   ``!!python/...``, no custom tags); keys are plain values and unique within their mapping
   (the error is at the second one); merge keys (``<<``) merge mappings; every value can be
   read (``2001-13-45`` looks like a date but is none).
2. **Collector shape** (:mod:`~flowgate.configs.collector_shape`): top-level sections only
   ``receivers``, ``processors``, ``exporters``, ``connectors``, ``extensions``, ``service``;
   ``receivers`` and ``exporters`` each define at least one component; component ids are
   ``type[/name]`` (type: a letter, then letters, digits or ``_``, at most 63; name: 1-1024
   characters, no whitespace, control characters or symbols); component settings are a
   mapping or empty; ``service`` has only ``extensions``, ``pipelines`` and ``telemetry``;
   ``service.pipelines`` is a non-empty mapping of ``signal[/name]`` ids (signal: traces,
   metrics, logs or profiles) to pipelines with only ``receivers``, ``processors`` and
   ``exporters``, at least one receiver and one exporter, each defined in the file (receivers
   and exporters may also be connectors); ``service.extensions`` names defined extensions; a
   connector used in a pipeline is an exporter in one pipeline and a receiver in another, with
   signals its type supports when it is a well-known one, without closing a cycle; a connector
   id is not also a receiver or exporter id.
3. **Available components** (when ``available`` is given): every component's *type* is one the
   collector has (also for components no pipeline uses: the collector refuses those too).

What is not checked: each component's own settings (``filelog`` needs ``include``, ``otlphttp``
an endpoint, which signals a receiver supports): the collector's ``validate`` command knows those
schemas, and the gateway runs it before applying a configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import ScalarNode

from flowgate.configs.collector_shape import KINDS, SINGULAR, ShapeChecker
from flowgate.configs.yaml_source import (
    LINE_BREAK,
    NULL_TAG,
    Problem,
    SafeSourceLoader,
    SourceError,
    check_nodes,
    offset_position,
    syntax_message,
)

MAX_CONFIG_BYTES: Final = 1024 * 1024
"""Longest configuration accepted, in UTF-8 bytes."""
EMPTY: Final = "the configuration is empty: it needs receivers, exporters and service.pipelines"
MAX_ERRORS: Final = 100
"""Most errors reported for one text (the first ones by position)."""


@dataclass(frozen=True)
class ConfigError:
    """One problem: ``line`` and ``column`` (1-based) of the key or value at fault."""

    line: int
    column: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class ValidationResult:
    """``errors`` sorted by position (at most :data:`MAX_ERRORS`); ``document`` is the parsed
    configuration (as ``yaml.safe_load`` reads it) when there are none. ``components`` maps each
    kind to the ids defined under it and the position of each id (also when there are errors,
    as far as the text could be read), for :func:`unavailable_components`."""

    errors: list[ConfigError]
    document: dict[str, Any] | None = None
    components: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(text: str, available: Mapping[str, Iterable[str]] | None = None) -> ValidationResult:
    """Check ``text`` as a Collector configuration (see the module docstring for the rules).

    ``available`` maps a kind (``receivers``, ``processors``, ``exporters``, ``connectors``,
    ``extensions``) to the component types a collector has; a kind it leaves out is not
    checked. Never raises for any text.
    """
    lines = LINE_BREAK.split(text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        return _result(
            lines, [(0, 0, f"the configuration is larger than {MAX_CONFIG_BYTES} bytes")]
        )
    try:
        loader = SafeSourceLoader(text)  # checks for unprintable characters at once
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except SourceError as exc:
        return _result(lines, [(exc.line, exc.column, exc.message)])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line, mark.column) if mark else (0, 0)
        return _result(lines, [(*where, syntax_message(exc))])
    except yaml.reader.ReaderError as exc:
        line, column = offset_position(text, exc.position)
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return _result(lines, [(line, column, f"not valid YAML: character {what} is not allowed")])
    if root is None or (isinstance(root, ScalarNode) and root.tag == NULL_TAG):
        return _result(lines, [(0, 0, EMPTY)])

    problems = check_nodes(loader, root)
    if problems:
        return _result(lines, problems)
    checker = ShapeChecker()
    checker.check(root)
    components = {
        kind: {cid: (n.start_mark.line + 1, n.start_mark.column + 1) for cid, n in ids.items()}
        for kind, ids in checker.components.items()
    }
    if checker.problems:
        return _result(lines, checker.problems, components=components)
    missing = unavailable_components(components, available) if available is not None else []
    if missing:
        return ValidationResult(errors=missing[:MAX_ERRORS], components=components)
    try:
        document = loader.construct_document(root)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None) or root.start_mark
        return _result(lines, [(mark.line, mark.column, f"invalid value: {exc}")])
    return ValidationResult(errors=[], document=document, components=components)


def unavailable_components(
    components: Mapping[str, Mapping[str, tuple[int, int]]],
    available: Mapping[str, Iterable[str]],
) -> list[ConfigError]:
    """An error for each component (of :attr:`ValidationResult.components`) whose type is not
    in ``available`` for its kind; kinds missing from ``available`` are not checked."""
    errors: list[ConfigError] = []
    for kind, ids in components.items():
        if kind not in available:
            continue
        types = set(available[kind])
        for cid, (line, column) in ids.items():
            ctype = cid.partition("/")[0]
            if ctype not in types:
                errors.append(
                    ConfigError(
                        line,
                        column,
                        f"{SINGULAR[kind]} {cid!r}: type {ctype!r} is not available "
                        f"(this collector has no {SINGULAR[kind]} of that type)",
                    )
                )
    return sorted(errors, key=lambda e: (e.line, e.column))


def components_from_agent_state(
    available_components: Mapping[str, Any] | None,
) -> dict[str, set[str]] | None:
    """The ``available`` argument of :func:`validate` from what an OpAMP agent reported.

    ``available_components`` is the stored form (``AgentState.available_components``):
    ``{"hash": hex, "components": {kind: {"metadata": {...}, "components": {type: {...}}}}}``,
    as the Collector's OpAMP extension reports it (one entry per kind, its sub-components keyed
    by component type). ``None`` when the agent has not reported its components (or only their
    hash) or reported none of the collector kinds; otherwise only the kinds it reported.
    """
    if not isinstance(available_components, Mapping):
        return None
    reported = available_components.get("components")
    if not isinstance(reported, Mapping):
        return None
    found: dict[str, set[str]] = {}
    for kind in KINDS:
        entry = reported.get(kind)
        if isinstance(entry, Mapping) and isinstance(entry.get("components"), Mapping):
            found[kind] = {str(t) for t in entry["components"]}
    return found or None


def _result(
    lines: list[str],
    problems: list[Problem],
    components: dict[str, dict[str, tuple[int, int]]] | None = None,
) -> ValidationResult:
    """Errors with 1-based positions, clamped to the text (so a position always exists)."""
    errors = []
    for line, column, message in problems:
        line = min(max(line, 0), len(lines) - 1)
        column = min(max(column, 0), len(lines[line]))
        errors.append(ConfigError(line + 1, column + 1, message))
    errors.sort(key=lambda e: (e.line, e.column))
    return ValidationResult(errors=errors[:MAX_ERRORS], components=components or {})
