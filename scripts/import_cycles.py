"""Fail on any import cycle among the project's own modules (make lint runs this after ruff).

Function-level imports count: one placed in a function to dodge a circle still closes it, and breaks
the day someone moves it to the top. Imports under `if TYPE_CHECKING:` never run, so they do not count.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("blueprints", "models", "schemas", "services", "store", "scripts", "bench", "tests")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> list[Path]:
    return sorted(ROOT.glob("*.py")) + sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def deepest(dotted: str, modules: set[str]) -> list[str]:
    """The deepest of a.b.c, a.b, a that is a project module: `from a.b import c` is a.b.c if c is a module."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if (name := ".".join(parts[:end])) in modules:
            return [name]
    return []


def is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def imported(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The project modules a module imports, at module level or in a function, but not under TYPE_CHECKING."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            pending.extend(node.orelse)  # the else branch does run
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(deepest(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            # Relative: level 1 is this module's package, each level more one package up.
            base = package[: len(package) - node.level + 1] if node.level else []
            base += [node.module] if node.module else []
            for alias in node.names:
                found.update(deepest(".".join(base + [alias.name]), modules))
    return found


def shortest_paths(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """The fewest imports from start to each module it reaches; to start itself, if it is in a cycle."""
    paths: dict[str, list[str]] = {}
    queue = [[start]]
    for path in queue:
        for following in sorted(graph[path[-1]]):
            if following not in paths:
                paths[following] = path + [following]
                queue.append(paths[following])
    return paths


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each module in one, skipping modules an earlier cycle went through:
    every strongly connected component (self loops too) shows, each of its modules at least once."""
    found: list[list[str]] = []
    shown: set[str] = set()
    for name in sorted(graph):
        cycle = shortest_paths(graph, name).get(name)
        if cycle and name not in shown:
            found.append(cycle)
            shown.update(cycle)
    return found


def main() -> int:
    files = {module_name(path): path for path in project_files()}
    graph = {name: imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", set(files))
             for name, path in files.items()}
    found = cycles(graph)
    for cycle in found:
        print(" -> ".join(cycle))
    if found:
        return 1
    print(f"import cycles: none among {len(files)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
