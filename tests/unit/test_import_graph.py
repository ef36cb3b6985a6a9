"""The package's import graph: no cycles, and one top (``webapp.cli``) that nothing imports.

The graph is read from the source with ``ast``: an edge for every import from one ``webapp``
module to another, at module level (not under ``if TYPE_CHECKING``); a second graph adds the
imports inside functions, which must not close a cycle either.
Which modules stay free of Flask is tested in test_bot_imports.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "webapp"
# The one module allowed to import the app factory inside a function: the top, which nothing
# imports (so the import hides no cycle), and which keeps the webhook worker's process free of
# the web app's modules that way.
APP_IMPORTERS_IN_FUNCTIONS = {"webapp.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, node: ast.Import | ast.ImportFrom, known: set[str], is_package: bool):
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        source = _absolute(module, node, is_package)
        # `from webapp.replies import runner` imports the module webapp.replies.runner;
        # `from webapp.models import Message` imports webapp.models.
        names = [
            f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
            for alias in node.names
        ]
    return {name for name in names if name in known and name != module}


def _all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Return every import that runs, at module level or in a function (not TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def import_graph(*, in_functions: bool = False) -> dict[str, set[str]]:
    """Return each webapp module's imports of other webapp modules (module level by default)."""
    collect = _all_imports if in_functions else _module_level_imports
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set()
        for node in collect(tree):
            graph[name] |= _targets(name, node, known, is_package)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the graph's cycles: one per strongly connected component of several modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_submodule_imports() -> None:
    graph = import_graph()
    # `from webapp.replies import service as replies` in the chat routes.
    assert "webapp.replies.service" in graph["webapp.chat.routes"]
    assert "webapp.webhooks.commands" in graph["webapp.cli"]
    assert "webapp.app" in import_graph(in_functions=True)["webapp.cli"]


def test_webapp_has_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles in webapp/:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_no_cycle_hides_in_a_function() -> None:
    # An import inside a function (the app factory's blueprints, say) is fine as long as it
    # does not close a loop back to its importer.
    cycles = find_cycles(import_graph(in_functions=True))
    assert cycles == [], "import cycles through imports in functions:\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_cli_is_the_top_nothing_imports_it() -> None:
    importers = sorted(name for name, targets in import_graph().items() if "webapp.cli" in targets)
    assert importers == []


def test_no_function_imports_the_app_module() -> None:
    # An import of webapp.app inside a function hides a cycle; only the top may import it.
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        module_level = set(map(id, _module_level_imports(tree)))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in module_level:
                continue
            imported = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [_absolute(name, node, path.name == "__init__.py")]
            )
            if "webapp.app" in imported and name not in APP_IMPORTERS_IN_FUNCTIONS:
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []
