"""The import graph points one way, as the README's Layout section states: bench -> pipeline ->
methods -> envs, never back; inside methods/ a family (gfn, control, marl, ...) imports only
itself and methods/common; and no two modules import each other, directly or round a longer
loop (imports inside functions count: they hide a loop, they do not remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = ("bench", "pipeline", "methods", "envs")
# a package may import those to its right, never those to its left
ORDER = {name: i for i, name in enumerate(PACKAGES)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (``a.b.c`` -> ``a.b`` where ``c`` is a name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (every import statement, at any depth, except
    those only under ``if TYPE_CHECKING:``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        typing_only = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
        deps = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for name in names:
                target = _resolve(name, modules)
                if target and target != mod:
                    deps.add(target)
        graph[mod] = deps
    return graph


def _package(mod: str) -> str:
    return mod.split(".")[0]


def _family(mod: str) -> str | None:
    """methods.<family>.x -> <family> (None for methods/__init__ and the registry itself)."""
    parts = mod.split(".")
    return parts[1] if parts[0] == "methods" and len(parts) > 2 else None


def test_packages_import_only_downwards():
    wrong = [
        f"{a} -> {b}" for a, deps in import_graph().items() for b in deps if ORDER[_package(b)] < ORDER[_package(a)]
    ]
    assert not wrong, "imports against bench -> pipeline -> methods -> envs:\n" + "\n".join(sorted(wrong))


def test_method_families_import_only_themselves_and_common():
    sideways = []
    for a, deps in import_graph().items():
        fa = _family(a)
        if fa is None or fa == "common":
            continue
        for b in deps:
            fb = _family(b)
            if fb is not None and fb not in (fa, "common"):
                sideways.append(f"{a} -> {b}")
    assert not sideways, (
        "sideways imports between method families (shared code belongs in methods/common):\n"
        + "\n".join(sorted(sideways))
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` importing its submodules (a registry) and a submodule importing a
    sibling through the package are one direction each; only the edges from ``__init__`` down
    into its own package are dropped, so a real loop between two modules still shows."""
    out = {}
    for mod, deps in graph.items():
        out[mod] = {d for d in deps if not d.startswith(mod + ".")}
    return out


def test_no_import_loops():
    loops = _cycles(_without_package_inits(import_graph()))
    assert not loops, "modules that import each other (directly or round a loop):\n" + "\n".join(
        " <-> ".join(c) for c in loops
    )


def test_the_checker_sees_a_loop_and_a_wrong_direction():
    """The checks above are not vacuous: a two-module loop and an upward import are found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    graph = import_graph()
    assert "methods.common.masked" in graph and "envs" in {_package(m) for m in graph}
    assert any(_package(b) == "methods" for deps in graph.values() for b in deps)
