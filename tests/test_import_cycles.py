"""No import cycles inside ``src/flare``: a static check of the module import graph, read with ``ast``.

A cycle works only while every module in it happens to be imported in the right order (an import at the
bottom of a file, or one hidden in a function), and breaks when someone tidies the imports. The graph has an
edge for every ``import`` statement in a module, at module level or inside a function: ``from flare.x import y``
is an edge to ``flare.x.y`` when that is a module, else to ``flare.x``. Importing ``flare.x.y`` also runs the
package ``flare/x/__init__.py``, but that is not counted as an edge: a package importing its own submodules
and a submodule importing a sibling (``from flare.x.base import B``) are fine. A submodule that imports its
*package* (``from flare.x import B``) while the package imports that submodule is a cycle. Imports under
``if TYPE_CHECKING:`` never run, so they are no edge; ``importlib.import_module`` calls are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, modules: set[str]) -> str | None:
    """``module`` if it is one of ours, else its longest prefix that is (``flare.x.Name`` → ``flare.x``)."""
    parts = module.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _statements(tree: ast.AST):
    """Every node of ``tree``, function bodies included (a lazy import is still an edge), except the body of
    ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in (child, *_statements(child)))
            continue
        yield node
        yield from _statements(node)


def _imported(tree: ast.AST, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    package = importer if is_package else importer.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: ``from . import x`` / ``from ..y import z``
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        found.update(t for t in (_resolve(target, modules) for target in targets) if t and t != importer)
    return found


def import_graph(root: Path = SOURCE, package: str = "flare") -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    modules = set(files)
    return {name: _imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", modules)
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (an iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycles_in_flare():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_checker_sees_function_level_and_package_cycles(tmp_path):
    package = tmp_path / "pkg"
    (package / "stage").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "stage" / "__init__.py").write_text("from pkg.stage import backend\n")
    (package / "stage" / "base.py").write_text("X = 1\n")
    (package / "stage" / "backend.py").write_text("from pkg.stage.base import X\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.stage"] == {"pkg.stage.backend"} and graph["pkg.stage.backend"] == {"pkg.stage.base"}
    assert find_cycle(graph) is None  # package → submodule → sibling is fine

    (package / "stage" / "backend.py").write_text("def f():\n    from pkg.stage import X\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.stage", "pkg.stage.backend", "pkg.stage"]
    (package / "stage" / "backend.py").write_text("def f():\n    from . import base\n    from .. import stage\n")
    assert import_graph(tmp_path, "pkg")["pkg.stage.backend"] == {"pkg.stage.base", "pkg.stage"}
    (package / "stage" / "backend.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                  "    from pkg.stage import X\n")
    assert import_graph(tmp_path, "pkg")["pkg.stage.backend"] == set()  # type-only imports never run
