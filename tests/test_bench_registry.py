"""The workloads of ``chatguard bench``: each registered name is a module's WORKLOAD of that
name, and no module of ``bench/`` imports another that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.registry import WORKLOADS, load

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_each_name_loads_the_workload_of_that_name(name: str) -> None:
    workload = load(name)
    assert workload.name == name
    assert len(WORKLOADS[name].help) < 80 and len(workload.description) > 100


def _bench_imports(path: Path) -> set[str]:
    """The ``bench`` modules ``path`` imports, at its top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "bench":
            found |= {f"bench.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench."):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bench.")}
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        for dep in sorted(graph.get(module, ())):
            if dep in path:
                cycles.append([*path[path.index(dep) :], dep])
            else:
                visit(dep, [*path, dep])

    for module in sorted(graph):
        visit(module, [module])
    return cycles


def test_no_bench_module_imports_one_that_imports_it_back() -> None:
    graph = {f"bench.{p.stem}": _bench_imports(p) for p in BENCH.glob("*.py")}
    assert "bench.relay_cases" in graph["bench.strict_bench"]  # the graph is read at all
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [  # and a cycle would be found
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    ]
