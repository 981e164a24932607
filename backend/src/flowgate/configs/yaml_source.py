"""Reading a configuration's YAML safely, keeping every node's position (validation stage 1).

:class:`SafeSourceLoader` composes the node tree (``yaml.compose`` with ``SafeLoader``: no
Python objects are ever built) and refuses, while composing, what makes a document unsafe or
huge, so an alias bomb is never expanded and deep nesting never reaches the recursive composer.
:func:`check_nodes` then checks keys and values of every node. Positions here are 0-based, as
in a ``yaml.Mark``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH: Final = 64
"""Deepest nesting of mappings and sequences."""
MAX_ALIAS_NODES: Final = 100_000
"""Most nodes that aliases may repeat, summed over every alias."""

CORE: Final = "tag:yaml.org,2002:"
STR_TAG: Final = CORE + "str"
NULL_TAG: Final = CORE + "null"
MERGE_TAG: Final = CORE + "merge"
#: Explicit tags allowed in the text, by node kind: the YAML core schema, and "!" (a
#: non-specific tag). No ``!!python/...``, no custom tags.
_ALLOWED_TAGS: Final[Mapping[type[yaml.Event], frozenset[str]]] = {
    yaml.ScalarEvent: frozenset(
        {"!", *(CORE + t for t in ("str", "int", "float", "bool", "null"))}
    ),
    yaml.MappingStartEvent: frozenset({"!", CORE + "map"}),
    yaml.SequenceStartEvent: frozenset({"!", CORE + "seq"}),
}
#: What ends a line for YAML (and so for the line numbers of every position).
LINE_BREAK: Final = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

Problem = tuple[int, int, str]
"""0-based line and column, and the message."""


class SourceError(Exception):
    """The text cannot be composed; ``line`` and ``column`` (0-based) say where."""

    def __init__(self, mark: object, message: str) -> None:
        super().__init__(message)
        self.line: int = getattr(mark, "line", 0)
        self.column: int = getattr(mark, "column", 0)
        self.message = message


class SafeSourceLoader(yaml.SafeLoader):
    """``SafeLoader`` that raises :class:`SourceError` while composing for: nesting deeper than
    :data:`MAX_DEPTH`, aliases repeating more than :data:`MAX_ALIAS_NODES` nodes, an alias inside
    the node it names, and a tag outside the core schema."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0  # nodes composed, plus the nodes aliases repeat
        self._repeated = 0  # the nodes aliases repeat
        self._open: set[str] = set()  # anchors whose node is being composed
        self._sizes: dict[str, int] = {}  # anchor -> nodes in its (expanded) subtree

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self.check_event()  # makes the next event current, without consuming it
        event: yaml.Event = self.current_event
        if isinstance(event, yaml.AliasEvent):
            anchor = event.anchor
            if anchor in self._open:
                raise SourceError(
                    event.start_mark, f"alias *{anchor} refers to a node containing it"
                )
            size = self._sizes.get(anchor or "", 0)
            self._repeated += size
            self._nodes += size
            if self._repeated > MAX_ALIAS_NODES:
                raise SourceError(
                    event.start_mark,
                    f"aliases repeat more than {MAX_ALIAS_NODES} nodes (alias expansion limit)",
                )
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_TAGS.get(type(event), ()):
            raise SourceError(
                event.start_mark,
                f"YAML tag {tag!r} is not allowed here (only the core tags: !!str, !!int, "
                "!!float, !!bool, !!null on values, !!map on mappings, !!seq on lists)",
            )
        nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if nested:
            if self._depth >= MAX_DEPTH:
                raise SourceError(
                    event.start_mark,
                    f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)",
                )
            self._depth += 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            # YAML lets an anchor be defined again (the later one wins), as the collector does.
            self.anchors.pop(anchor, None)
            self._open.add(anchor)
        before = self._nodes
        self._nodes += 1
        node = super().compose_node(parent, index)
        if nested:
            self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._nodes - before
        return node


def _plain_string(loader: SafeSourceLoader, node: ScalarNode) -> str:
    return loader.construct_scalar(node)


# "=" (the YAML 1.1 value key) and a "<<" outside a key are plain strings, as for the collector.
SafeSourceLoader.add_constructor(CORE + "value", _plain_string)
SafeSourceLoader.add_constructor(MERGE_TAG, _plain_string)


def syntax_message(exc: yaml.MarkedYAMLError) -> str:
    if exc.problem == "but found another document":
        return "the configuration must be a single YAML document"
    parts = [p for p in (exc.problem, exc.context) if p]
    return "not valid YAML: " + ("; ".join(parts) or "syntax error")


def check_nodes(loader: SafeSourceLoader, root: Node) -> list[Problem]:
    """Keys, duplicates, merges and values of every node (each node once, aliases included)."""
    problems: list[Problem] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            try:
                loader.construct_object(node)
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                problems.append(at(node, f"invalid value {node.value!r}: {_reason(exc)}"))
        elif isinstance(node, SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, MappingNode):
            first: dict[str, ScalarNode] = {}
            for key, value in node.value:
                stack.append(value)
                if not isinstance(key, ScalarNode):
                    problems.append(
                        at(key, "a mapping key must be a plain value, not a collection")
                    )
                    stack.append(key)
                    continue
                if key.tag == MERGE_TAG:
                    if not _mergeable(value):
                        problems.append(
                            at(value, "a merge key (<<) takes a mapping or a list of mappings")
                        )
                    continue
                stack.append(key)
                if key.value in first:
                    line = first[key.value].start_mark.line + 1
                    problems.append(at(key, f"duplicate key {key.value!r} (first at line {line})"))
                else:
                    first[key.value] = key
    return problems


def _mergeable(node: Node) -> bool:
    if isinstance(node, MappingNode):
        return True
    return isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return str(exc.problem or exc.context or "unreadable")
    return str(exc) or type(exc).__name__


def at(node: Node, message: str) -> Problem:
    return (node.start_mark.line, node.start_mark.column, message)


def offset_position(text: str, offset: int) -> tuple[int, int]:
    """0-based line and column of character ``offset`` of ``text``."""
    before = text[: max(0, offset)]
    breaks = list(LINE_BREAK.finditer(before))
    if not breaks:
        return 0, len(before)
    return len(breaks), len(before) - breaks[-1].end()
