"""The import graph of `src/paywire` has no circles (docs/architecture.md, "The rule of direction").

Every `paywire.*` import counts, wherever it stands: at the top of a module, inside a function
(an import moved into a function to dodge a circle is still a circle) or under `TYPE_CHECKING`.
One exception, a package's face: in an `__init__.py`, the names handed on lazily to users outside
(a module `__getattr__`, PEP 562, and the `TYPE_CHECKING` block that shows them to type checkers)
run nothing when the package is imported, and the package's own modules never ask for them.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_names(src: Path) -> dict[str, Path]:
    names = {}
    for path in sorted((src / "paywire").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    return ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imports(tree: ast.Module, is_package: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of the module, but a package face's lazy names."""
    skipped: set[int] = set()
    if is_package:
        for top in tree.body:
            lazy = isinstance(top, ast.FunctionDef) and top.name == "__getattr__"
            if lazy or (isinstance(top, ast.If) and _is_type_checking(top)):
                skipped.update(id(node) for node in ast.walk(top))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
            yield node


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` is, or lives in (`paywire.a.b.C` -> `paywire.a.b`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(src: Path) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}, for the modules under `src/paywire`."""
    modules = _module_names(src)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges = graph.setdefault(name, {})
        for node in _imports(ast.parse(path.read_text(), str(path)), is_package):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                # `from paywire.billing import charging` names a module; `... import Call` a name in one.
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                owner = _owner(target, modules)
                if owner is not None and owner != name:
                    edges.setdefault(owner, node.lineno)
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, {})))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def one_loop(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest loop through the component's first module, as `a -> b -> ... -> a`."""
    members, start = set(component), component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node]):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if succ in members and succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    raise AssertionError("a strongly connected component always has a loop")


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    loop = one_loop(graph, component)
    steps = [f"{a} -> {b} (line {graph[a][b]})" for a, b in itertools.pairwise(loop)]
    return f"{len(component)} modules: {', '.join(component)}\n  for instance: " + "\n  ".join(steps)


def test_the_import_graph_has_no_circles() -> None:
    graph = import_graph(SRC)
    assert "paywire.billing.charging" in graph  # the walk found the package
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(describe(graph, component) for component in found)


def test_a_circle_is_found_wherever_its_import_stands(tmp_path: Path) -> None:
    package = tmp_path / "paywire"
    package.mkdir()
    (package / "__init__.py").write_text("def __getattr__(name):\n    from paywire import low\n")
    (package / "low.py").write_text("import json\n\n\ndef f():\n    from .high import g\n")  # inside a function
    (package / "high.py").write_text("from paywire.low import f\n")
    graph = import_graph(tmp_path)
    assert graph["paywire"] == {}  # the package's lazy face
    assert circles(graph) == [["paywire.high", "paywire.low"]]
    assert one_loop(graph, ["paywire.high", "paywire.low"]) == ["paywire.high", "paywire.low", "paywire.high"]
