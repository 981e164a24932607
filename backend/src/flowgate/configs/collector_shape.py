"""The shape of an OpenTelemetry Collector configuration (validation stage 2), on YAML nodes.

The rules follow the Collector's own (``otelcol validate``): sections, component ids, service
keys, pipelines and what they reference, connectors; not each component's settings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flowgate.configs.yaml_source import CORE, MERGE_TAG, NULL_TAG, STR_TAG, Problem, at

KINDS: Final = ("receivers", "processors", "exporters", "connectors", "extensions")
SECTIONS: Final = (*KINDS, "service")
SIGNALS: Final = ("traces", "metrics", "logs", "profiles")
SERVICE_KEYS: Final = ("extensions", "pipelines", "telemetry")
PIPELINE_ROLES: Final = ("receivers", "processors", "exporters")
SINGULAR: Final = {
    "receivers": "receiver",
    "processors": "processor",
    "exporters": "exporter",
    "connectors": "connector",
    "extensions": "extension",
}

_SAME_SIGNAL = frozenset((s, s) for s in ("traces", "metrics", "logs"))
_TO_METRICS = frozenset((s, "metrics") for s in ("traces", "metrics", "logs"))
CONNECTOR_SIGNALS: Final[Mapping[str, frozenset[tuple[str, str]]]] = {
    "forward": _SAME_SIGNAL,
    "routing": _SAME_SIGNAL,
    "failover": _SAME_SIGNAL,
    "roundrobin": _SAME_SIGNAL,
    "count": _TO_METRICS,
    "spanmetrics": frozenset({("traces", "metrics")}),
    "servicegraph": frozenset({("traces", "metrics")}),
    "exceptions": frozenset({("traces", "metrics"), ("traces", "logs")}),
}
"""(signal of the pipeline it exports from, signal of the pipeline it receives into) pairs of
well-known connector types. Other types are checked for both roles only."""

_TYPE_RE: Final = re.compile(r"[a-zA-Z][0-9a-zA-Z_]{0,62}")
_MAX_NAME = 1024


@dataclass
class _Use:
    pipeline: str
    signal: str | None
    node: Node


class ShapeChecker:
    """Call :meth:`check` on the root node once; then read ``problems`` and ``components``
    (kind -> valid component id -> its key node)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.components: dict[str, dict[str, ScalarNode]] = {}
        self._invalid: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self._as_exporter: dict[str, list[_Use]] = {}
        self._as_receiver: dict[str, list[_Use]] = {}

    def error(self, node: Node, message: str) -> None:
        self.problems.append(at(node, message))

    def check(self, root: Node) -> None:
        if not isinstance(root, MappingNode):
            self.error(
                root,
                f"the configuration must be a YAML mapping of sections, not {_describe(root)}",
            )
            return
        top = _pairs(root)
        meant = self._unknown_keys(top, SECTIONS, "unknown top-level key {!r}")
        for name in ("receivers", "exporters", "service"):
            if name not in top and name not in meant:  # a misspelt key was reported already
                self.error(root, f"missing section {name!r}: {_NEEDS[name]}")
        for kind in KINDS:
            if kind in top:
                self._section(kind, *top[kind])
        if "service" in top:
            self._service(*top["service"])
        self._connectors()

    def _section(self, kind: str, key: ScalarNode, value: Node) -> None:
        ids: dict[str, ScalarNode] = {}
        self.components[kind] = ids
        if _is_null(value):
            pairs = {}
        elif isinstance(value, MappingNode):
            pairs = _pairs(value)
        else:
            self.error(value, f"{kind} must be a mapping of component ids to their settings")
            self._invalid[kind].add("*")
            return
        if not pairs and kind in _NEEDS:
            self.error(key, f"section {kind!r} is empty: {_NEEDS[kind]}")
        one = SINGULAR[kind]
        for cid, (ckey, settings) in pairs.items():
            problem = _id_problem(cid)
            if problem:
                self.error(ckey, f"{one} id {cid!r} is invalid: {problem}")
                self._invalid[kind].add(cid)
                continue
            ids[cid] = ckey
            if not (_is_null(settings) or isinstance(settings, MappingNode)):
                self.error(settings, f"{one} {cid!r}: its settings must be a mapping (or empty)")
        if kind == "connectors":
            for cid, ckey in ids.items():
                for other in ("receivers", "exporters"):
                    if cid in self.components.get(other, {}):
                        self.error(
                            ckey,
                            f"connector {cid!r} has the id of a {SINGULAR[other]} too: "
                            "pipelines could not tell them apart (rename one)",
                        )

    def _service(self, key: ScalarNode, value: Node) -> None:
        if _is_null(value):
            self.error(key, "service.pipelines must define at least one pipeline")
            return
        if not isinstance(value, MappingNode):
            self.error(value, "service must be a mapping (extensions, pipelines, telemetry)")
            return
        pairs = _pairs(value)
        meant = self._unknown_keys(pairs, SERVICE_KEYS, "unknown key {!r} under service")
        if "telemetry" in pairs:
            telemetry = pairs["telemetry"][1]
            if not (_is_null(telemetry) or isinstance(telemetry, MappingNode)):
                self.error(telemetry, "service.telemetry must be a mapping")
        if "extensions" in pairs:
            for item in self._id_list(pairs["extensions"][1], "service.extensions") or []:
                if not self._defined("extensions", item.value):
                    self.error(
                        item,
                        f"service.extensions uses extension {item.value!r}, "
                        "which is not defined under extensions",
                    )
        if "pipelines" not in pairs:
            if "pipelines" not in meant:
                self.error(key, "service.pipelines must define at least one pipeline")
            return
        pkey, pipelines = pairs["pipelines"]
        if _is_null(pipelines) or (isinstance(pipelines, MappingNode) and not pipelines.value):
            self.error(pkey, "service.pipelines must define at least one pipeline")
        elif not isinstance(pipelines, MappingNode):
            self.error(
                pipelines, "service.pipelines must be a mapping of pipeline ids to pipelines"
            )
        else:
            for pid, (idkey, pipeline) in _pairs(pipelines).items():
                self._pipeline(pid, idkey, pipeline)

    def _pipeline(self, pid: str, key: ScalarNode, value: Node) -> None:
        signal: str | None = pid.partition("/")[0]
        problem = _pipeline_id_problem(pid)
        if problem:
            self.error(key, f"pipeline id {pid!r} is invalid: {problem}")
            signal = None
        if _is_null(value):
            pairs = {}
        elif isinstance(value, MappingNode):
            pairs = _pairs(value)
        else:
            self.error(
                value, f"pipeline {pid!r} must be a mapping of receivers, processors, exporters"
            )
            return
        meant = self._unknown_keys(pairs, PIPELINE_ROLES, f"unknown key {{!r}} in pipeline {pid!r}")
        for role in PIPELINE_ROLES:
            items = (
                self._id_list(pairs[role][1], f"pipeline {pid!r}: {role}") if role in pairs else []
            )
            if items == [] and role != "processors" and role not in meant:
                self.error(key, f"pipeline {pid!r} must have at least one {SINGULAR[role]}")
            for item in items or []:
                self._reference(pid, signal, role, item)

    def _unknown_keys(
        self, pairs: Mapping[str, tuple[ScalarNode, Node]], allowed: tuple[str, ...], what: str
    ) -> set[str]:
        """Report the keys of ``pairs`` not in ``allowed``; return the allowed keys that some
        of them look like a misspelling of (case, or singular for plural), hinted at."""
        meant: set[str] = set()
        for name, (key, _) in pairs.items():
            if name in allowed:
                continue
            guess = next((a for a in allowed if name.lower() in (a, a[:-1])), None)
            hint = f"; did you mean {guess!r}?" if guess else ""
            self.error(key, f"{what.format(name)} (allowed: {', '.join(allowed)}){hint}")
            if guess and guess not in pairs:
                meant.add(guess)
        return meant

    def _reference(self, pid: str, signal: str | None, role: str, item: ScalarNode) -> None:
        cid = item.value
        if self._defined(role, cid):
            return  # (an id that is also a connector's was reported as ambiguous)
        if role != "processors" and cid in self.components.get("connectors", {}):
            uses = self._as_exporter if role == "exporters" else self._as_receiver
            uses.setdefault(cid, []).append(_Use(pid, signal, item))
            return
        if role != "processors" and self._defined("connectors", cid):
            return
        where = role if role == "processors" else f"{role} or connectors"
        self.error(
            item,
            f"pipeline {pid!r} uses {SINGULAR[role]} {cid!r}, which is not defined under {where}",
        )

    def _defined(self, kind: str, cid: str) -> bool:
        invalid = self._invalid[kind]
        return cid in self.components.get(kind, {}) or cid in invalid or "*" in invalid

    def _id_list(self, node: Node, what: str) -> list[ScalarNode] | None:
        """The string items of a list of ids; None (after reporting it) when the list or any
        item is something else."""
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list of component ids, not {_describe(node)}")
            return None
        items: list[ScalarNode] = []
        for item in node.value:
            if isinstance(item, ScalarNode) and item.tag == STR_TAG:
                items.append(item)
            else:
                self.error(item, f"{what} must be a list of component ids, not {_describe(item)}")
        return items if len(items) == len(node.value) else None

    def _connectors(self) -> None:
        for cid in sorted(set(self._as_exporter) | set(self._as_receiver)):
            exports, receives = self._as_exporter.get(cid, []), self._as_receiver.get(cid, [])
            if not receives:
                self.error(
                    exports[0].node,
                    f"connector {cid!r} is used as an exporter (pipeline {exports[0].pipeline!r}) "
                    "but as a receiver in no pipeline: a connector must be both",
                )
                continue
            if not exports:
                self.error(
                    receives[0].node,
                    f"connector {cid!r} is used as a receiver (pipeline {receives[0].pipeline!r}) "
                    "but as an exporter in no pipeline: a connector must be both",
                )
                continue
            supported = CONNECTOR_SIGNALS.get(cid.partition("/")[0])
            if supported is not None:
                self._connector_signals(cid, supported, exports, receives)
        self._cycles()

    def _connector_signals(
        self,
        cid: str,
        supported: frozenset[tuple[str, str]],
        exports: list[_Use],
        receives: list[_Use],
    ) -> None:
        ctype = cid.partition("/")[0]
        into = {u.signal for u in receives if u.signal}
        out_of = {u.signal for u in exports if u.signal}
        for use in exports:
            if use.signal and not any((use.signal, r) in supported for r in into):
                self.error(
                    use.node,
                    f"connector {cid!r} exports from {use.signal} pipeline {use.pipeline!r}, but "
                    f"no pipeline it is a receiver in takes what a {ctype} connector makes of "
                    f"{use.signal} ({_pairs_text(supported)})",
                )
        for use in receives:
            if use.signal and not any((e, use.signal) in supported for e in out_of):
                self.error(
                    use.node,
                    f"connector {cid!r} receives into {use.signal} pipeline {use.pipeline!r}, but "
                    f"no pipeline it is an exporter in gives a {ctype} connector what it needs "
                    f"for {use.signal} ({_pairs_text(supported)})",
                )

    def _cycles(self) -> None:
        """Pipelines joined by connectors must not loop: data would circulate forever."""
        edges: dict[str, list[tuple[str, str, Node]]] = {}
        for cid, exports in self._as_exporter.items():
            supported = CONNECTOR_SIGNALS.get(cid.partition("/")[0])
            for e in exports:
                for r in self._as_receiver.get(cid, []):
                    pair = (e.signal, r.signal)
                    linked = pair in supported if supported is not None else e.signal == r.signal
                    if e.signal and r.signal and linked:
                        edges.setdefault(e.pipeline, []).append((r.pipeline, cid, r.node))
        done: set[str] = set()
        for start in sorted(edges):
            if start in done:
                continue
            # Iterative depth-first search: a chain of thousands of pipelines must not recurse.
            path = [start]
            on_path = {start}
            todo = [iter(edges.get(start, []))]
            while todo:
                step = next(todo[-1], None)
                if step is None:
                    todo.pop()
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    continue
                target, cid, node = step
                if target in on_path:
                    loop = [*path[path.index(target) :], target]
                    self.error(
                        node, f"connector {cid!r} closes a cycle of pipelines: {' -> '.join(loop)}"
                    )
                    return
                if target not in done:
                    path.append(target)
                    on_path.add(target)
                    todo.append(iter(edges.get(target, [])))


_NEEDS: Final = {
    "receivers": "a configuration needs at least one receiver",
    "exporters": "a configuration needs at least one exporter",
    "service": "a configuration needs service.pipelines",
}


def _pairs(node: MappingNode) -> dict[str, tuple[ScalarNode, Node]]:
    """The mapping's scalar keys (raw text) with their key and value nodes, merge keys applied:
    its own keys win over merged ones, and earlier merged mappings over later ones. Keys that
    are not scalars were reported by the YAML stage and are skipped."""
    own: dict[str, tuple[ScalarNode, Node]] = {}
    merged: list[MappingNode] = []
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if key.tag == MERGE_TAG:
            merged += [value] if isinstance(value, MappingNode) else list(value.value)
        else:
            own.setdefault(key.value, (key, value))
    for source in merged:
        for name, pair in _pairs(source).items():
            own.setdefault(name, pair)
    return own


def _id_problem(cid: str) -> str | None:
    ctype, slash, name = cid.partition("/")
    if not cid:
        return "an id must not be empty"
    if not _TYPE_RE.fullmatch(ctype):
        return (
            f"the type {ctype!r} must start with a letter and have only letters, digits and '_' "
            "(at most 63 characters)"
        )
    if slash:
        return _name_problem(name)
    return None


def _pipeline_id_problem(pid: str) -> str | None:
    signal, slash, name = pid.partition("/")
    if signal not in SIGNALS:
        return f"the signal {signal!r} must be one of {', '.join(SIGNALS)}"
    return _name_problem(name) if slash else None


def _name_problem(name: str) -> str | None:
    if not name:
        return "the name after '/' must not be empty"
    if len(name) > _MAX_NAME:
        return f"the name after '/' is longer than {_MAX_NAME} characters"
    # Unicode categories Z* (spaces), C* (control, format, unassigned), S* (symbols).
    if any(unicodedata.category(ch)[0] in "ZCS" for ch in name):
        return "the name after '/' must not contain spaces, control characters or symbols"
    return None


_SCALAR_NAMES: Final = {
    STR_TAG: "a string",
    NULL_TAG: "null",
    CORE + "int": "a number",
    CORE + "float": "a number",
    CORE + "bool": "a boolean",
    CORE + "timestamp": "a date",
}


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = _SCALAR_NAMES.get(node.tag, "value")
    return f"{kind} {node.value!r}" if len(node.value) <= 40 else kind


def _pairs_text(supported: frozenset[tuple[str, str]]) -> str:
    return ", ".join(f"{e} -> {r}" for e, r in sorted(supported))
