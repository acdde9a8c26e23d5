"""The import contracts of the architecture, checked from the source (``nox -s lint``):

1. ``django_messaging.core`` (and ``django_messaging.testing``, shipped with it) imports no
   feature package;
2. no feature package imports another;
3. no import cycle inside any distribution, counting imports inside functions too (an import
   moved into a function to dodge a cycle is still a cycle).

Imports under ``if TYPE_CHECKING:`` are left out: they never run.
``python scripts/check-imports.py [--graph]`` exits 1 and names each broken contract.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "core": ROOT / "shared",
    "testing": ROOT / "shared",
    "kafka": ROOT / "packages" / "kafka",
    "outbox": ROOT / "packages" / "outbox",
    "cqrs": ROOT / "packages" / "cqrs",
    "eventstore": ROOT / "packages" / "eventstore",
}
FEATURES = ["kafka", "outbox", "cqrs", "eventstore"]


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, base in SOURCES.items():
        for path in (base / "django_messaging" / name).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports: the deepest existing module each import names."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            candidates = [f"{source}.{alias.name}" for alias in node.names] + [source]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
                break
    return targets


#: Subpackages shipped in another distribution than their name says.
SHIPPED_IN = {"testing": "core"}


def distribution(module: str) -> str:
    name = module.split(".")[1]
    return SHIPPED_IN.get(name, name)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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


def main(argv: list[str]) -> int:
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    problems: list[str] = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            source_dist, target_dist = distribution(name), distribution(target)
            if source_dist == "core" and target_dist != "core":
                problems.append(f"core imports a feature package: {name} -> {target}")
            elif source_dist in FEATURES and target_dist in FEATURES and source_dist != target_dist:
                problems.append(f"a feature package imports another: {name} -> {target}")
    by_distribution: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for name, targets in graph.items():
        by_distribution[distribution(name)][name] = {
            t for t in targets if distribution(t) == distribution(name)
        }
    for dist, subgraph in sorted(by_distribution.items()):
        for component in cycles(subgraph):
            problems.append(
                f"import cycle in {dist} ({len(component)} modules): " + ", ".join(component)
            )
    if "--graph" in argv:
        for name, targets in sorted(graph.items()):
            print(name, "->", ", ".join(sorted(targets)))
    for problem in problems:
        print(problem)
    if not problems:
        print(f"import contracts hold ({len(found)} modules)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
