"""The product's packages form layers: read from the source (AST, nothing imported).

``chatguard`` (command line, process supervision) sits on top; ``signaling``, ``relay``,
``models`` and ``fastpath`` never import it, nor the benchmarks in ``bench``; no product
module imports the tests. No two modules of
the product import each other, directly or through others, at run time: a cycle makes the
import order matter and one package's change break another's start-up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("chatguard", "signaling", "relay", "models", "fastpath")
LOWER = ("signaling", "relay", "models", "fastpath")
FORBIDDEN_BELOW = ("chatguard", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, runtime_only: bool) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import; with `runtime_only`, none from a
    ``if TYPE_CHECKING:`` block, which exists for annotations and never runs."""
    for node in ast.iter_child_nodes(tree):
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (item for child in node.orelse for item in _imports(child, runtime_only))
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            yield from ((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
        yield from _imports(node, runtime_only)


def _parse(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))


def _product_dependencies(module: str) -> set[str]:
    """Product modules `module` imports at run time (``from a import b`` names a.b when that
    is a module, else a)."""
    found = set()
    for name, _line in _imports(_parse(module), runtime_only=True):
        if name in MODULES and name != module:
            found.add(name)
    return found


def _imports_from(module: str, packages: tuple[str, ...]) -> list[str]:
    """Every import of `module` (annotation-only ones too) that reaches into `packages`."""
    return [
        f"{MODULES[module].relative_to(ROOT)}:{line}: imports {name}"
        for name, line in _imports(_parse(module), runtime_only=False)
        if name.split(".")[0] in packages
    ]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] in LOWER))
def test_lower_layers_never_import_the_entry_point_or_benchmarks(module: str) -> None:
    offending = _imports_from(module, FORBIDDEN_BELOW)
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_product_never_imports_tests(module: str) -> None:
    offending = _imports_from(module, ("tests",))
    assert not offending, "\n".join(offending)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that starts and ends on the same module, if any."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_no_import_cycle_between_product_modules() -> None:
    graph = {module: _product_dependencies(module) for module in MODULES}
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    """The walker sees what it must: a known upward import and a made-up cycle."""
    assert "chatguard.supervisor" in _product_dependencies("chatguard.serve")
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import chatguard\n")
    assert ("chatguard", 3) in set(_imports(tree, runtime_only=False))
    assert ("chatguard", 3) not in set(_imports(tree, runtime_only=True))
