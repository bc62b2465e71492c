"""Print Conveyor's package import graph: which top-level package imports which, and any cycles.

Usage: ``PYTHONPATH=src python scripts/package_graph.py [--depth N] [--why A B]``

Every import counts, including those inside functions and under ``TYPE_CHECKING``,
as import-linter counts them. ``--why A B`` lists the module imports that make
package A import package B (e.g. ``--why replication orchestration``).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import grimp

ROOT = "conveyor"


def package_of(module: str, depth: int) -> str:
    """`conveyor.replication.cdc.task` at depth 1 is `replication`, at depth 2 `replication.cdc`."""
    parts = module.split(".")[1:]
    return ".".join(parts[:depth]) or "(root)"


def package_edges(graph: grimp.ImportGraph, depth: int) -> dict[tuple[str, str], int]:
    """Count module imports between distinct packages."""
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = package_of(importer, depth), package_of(imported, depth)
            if a != b:
                edges[(a, b)] += 1
    return edges


def cycles(nodes: set[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def why(graph: grimp.ImportGraph, a: str, b: str) -> None:
    for importer in sorted(graph.modules):
        if not (importer == f"{ROOT}.{a}" or importer.startswith(f"{ROOT}.{a}.")):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported == f"{ROOT}.{b}" or imported.startswith(f"{ROOT}.{b}."):
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = ", ".join(str(d["line_number"]) for d in details)
                print(f"{importer} -> {imported}  (line {lines})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=1, help="package depth below conveyor (default 1)")
    parser.add_argument("--why", nargs=2, metavar=("A", "B"), help="module imports from package A into B")
    args = parser.parse_args()
    graph = grimp.build_graph(ROOT)
    if args.why:
        why(graph, *args.why)
        return
    edges = package_edges(graph, args.depth)
    nodes = {package_of(m, args.depth) for m in graph.modules}
    for package in sorted(nodes):
        targets = sorted((b, n) for (a, b), n in edges.items() if a == package)
        listed = ", ".join(f"{b} ({n})" for b, n in targets) or "-"
        print(f"{package:<24} -> {listed}")
    found = cycles(nodes, set(edges))
    print()
    if not found:
        print("cycles: none")
    for component in found:
        print(f"cycle: {' <-> '.join(component)}")


if __name__ == "__main__":
    main()
