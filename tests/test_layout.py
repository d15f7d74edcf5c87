"""The package's layout: no import cycles between apt_fast's modules, nor between its packages.

Every import counts, at module level or inside a function: a lazy import still makes the two modules
depend on each other. An import of a module's own ancestor package is not an edge (importing the module
runs that package's __init__ anyway).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "apt_fast"


def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of apt_fast (a package by its __init__.py)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of apt_fast; None outside apt_fast."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names ``node`` imports, relative imports resolved; ``from pkg import name`` gives pkg.name,
    which :func:`_known` takes back to pkg when ``name`` is not a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, dict[str, list[int]]]:
    """module -> {imported apt_fast module -> line numbers of the imports}."""
    modules = _module_files()
    graph = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for imported in _imported(node, name, path.name == "__init__.py"):
                target = _known(imported, modules)
                if target is None or target == name or name.startswith(target + "."):
                    continue
                lines = graph[name].setdefault(target, [])
                if node.lineno not in lines:
                    lines.append(node.lineno)
    return graph


def package_graph(graph: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, list[str]]]:
    """The module graph collapsed onto packages (a module counts as its package, a package as itself),
    without the edges between a package and its ancestors; each edge keeps its imports as "<module> line <n>"."""
    packages = {name: name if path.name == "__init__.py" else name.rpartition(".")[0]
                for name, path in _module_files().items()}
    collapsed = {package: {} for package in packages.values()}
    for source, targets in graph.items():
        for target, lines in targets.items():
            a, b = packages[source], packages[target]
            if a == b or a.startswith(b + ".") or b.startswith(a + "."):
                continue
            collapsed[a].setdefault(b, []).extend(f"{source} line {line}" for line in lines)
    return collapsed


def strongly_connected_components(graph: dict[str, dict[str, list]]) -> list[list[str]]:
    """Tarjan's algorithm: the graph's strongly connected components, each sorted."""
    index, low, stack, components = {}, {}, [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            at = stack.index(node)
            components.append(sorted(stack[at:]))
            del stack[at:]

    for node in graph:
        if node not in index:
            visit(node)
    return components


def _where(line: int | str) -> str:
    return f"line {line}" if isinstance(line, int) else line


def _cycles(graph: dict[str, dict[str, list]]) -> str:
    """Each strongly connected component of more than one node, with the edges inside it; "" when none."""
    text = []
    for component in strongly_connected_components(graph):
        if len(component) > 1:
            text.append(f"  {', '.join(component)}")
            text += [f"    {source} -> {target} ({', '.join(map(_where, lines))})"
                     for source in component for target, lines in sorted(graph[source].items()) if target in component]
    return "\n".join(text)


def test_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "apt_fast.models.apt.modeling_apt" in graph["apt_fast.models.apt"]  # from .modeling_apt import ...
    assert "apt_fast.models.apt.gguf_loading" in graph["apt_fast.commands.import_gguf"]  # inside run()


def test_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles between modules (the modules, then the imports between them):\n{cycles}"


def test_no_import_cycles_between_packages():
    cycles = _cycles(package_graph(import_graph()))
    assert not cycles, f"import cycles between packages (the packages, then the imports between them):\n{cycles}"
