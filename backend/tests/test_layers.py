"""The package structure is a rule, checked: no import cycles between FlowGate's packages, and
``core`` imports nothing above it. Every import counts, including those inside functions and
under ``TYPE_CHECKING`` (a cycle there still couples the packages)."""

from __future__ import annotations

import ast
from pathlib import Path

import flowgate

SRC = Path(flowgate.__file__).resolve().parent
GENERATED = {"proto"}


def unit_of(module: str) -> str:
    """``flowgate.gateways.repository`` -> ``gateways``; top-level modules stand alone."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        if GENERATED & set(rel.parts) or "migrations" in rel.parts:
            continue
        module = ".".join(("flowgate", *rel.parts)).removesuffix(".__init__")
        source = unit_of(module)
        targets = graph.setdefault(source, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "flowgate":
                    names = [
                        f"flowgate.{a.name}" for a in node.names if not a.name.startswith("__")
                    ]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("flowgate.") and unit_of(name) != source:
                    targets.add(unit_of(name))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_packages() -> None:
    cycle = find_cycle(package_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_core_imports_nothing_above_it() -> None:
    assert package_graph()["core"] == set()


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
