"""Layers point one way: no import cycle between pyacemaker's top-level modules and subpackages.

Every import in every module under ``src/pyacemaker`` counts, function-local ones and those
under ``TYPE_CHECKING`` included, and ``from . import x`` is resolved. An import is an edge
between top-level parts (``training/linear.py`` importing ``pyacemaker.dataset`` is
``training -> dataset``); imports within one part are not edges. The layers, lowest first; a
part imports only parts below it:

    records, errors, timing, progress, cache, composition   (import nothing of ours)
    workdir (run paths, staged writes), lammps_runtime (errors), prototypes (composition)
    state (workdir)
    config
    structures      geometry helpers, seeds, strategies, policy, embedding
    dataset
    oracle
    training        baseline, potential, metrics, fits, selection
    dynamics        LAMMPS input, run, output, plugin: MD with a trained potential
    dispatch        where tasks run (local pools, Parsl)
    validation
    candidates      MD runs as tasks, and the candidates they give
    saddles         dimer, NEB, harmonic rates with the potential, halted on gamma
    eon, eon_bridge eOn's client as the dimer engine, through its external potential
    kmc             kinetic Monte Carlo runs as tasks
    explore         MD and strategies with the current potential
    status, doctor
    orchestrator
    cli
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pyacemaker

PACKAGE = Path(pyacemaker.__file__).parent
ROOT = "__init__"  # the package's own __init__.py as a graph node


def _part(module: str) -> str:
    """Top-level part of a dotted module name inside pyacemaker (``pyacemaker.training.linear``
    -> ``training``); the package itself is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_part(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _imported_modules(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every pyacemaker import in the file at ``path``."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])  # for relative imports
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "pyacemaker":  # from pyacemaker import timing: the name may be a part
                found += [(f"pyacemaker.{a.name}" if _is_part(a.name) else module, node.lineno)
                          for a in node.names]
            else:
                found.append((module, node.lineno))
    return [(m, line) for m, line in found if m == "pyacemaker" or m.startswith("pyacemaker.")]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """``graph[a][b]``: the ``file:line`` places where part ``a`` imports part ``b``."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        source = ROOT if relative.parts == ("__init__.py",) else relative.parts[0].removesuffix(".py")
        for module, line in _imported_modules(path):
            target = _part(module)
            if target != source:
                graph[source][target].append(f"{relative.as_posix()}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """A shortest cycle through every edge that lies on a cycle, each cycle once, as its
    parts from its first edge back to the start (``["training", "dynamics", "training"]``)."""
    found: list[list[str]] = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            back = _shortest_path(graph, b, a)
            if back is None:
                continue
            cycle = [a, *back]
            rotations = {tuple(cycle[i:-1] + cycle[:i]) for i in range(len(cycle) - 1)}
            if not any(tuple(c[:-1]) in rotations for c in found):
                found.append(cycle)
    return found


def _shortest_path(graph: dict[str, dict[str, list[str]]], start: str, end: str) -> list[str] | None:
    """Parts from ``start`` to ``end`` along imports (breadth first), or ``None``."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        if node == end:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])
            return path[::-1]
        for nxt in sorted(graph.get(node, {})):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return None


def test_graph_sees_known_imports():
    graph = import_graph()
    assert "training/linear.py" in " ".join(graph["training"]["dataset"])
    assert graph["dynamics"]["lammps_runtime"]  # function-local imports only
    assert graph["orchestrator"]["timing"]  # from pyacemaker import timing


def test_shared_records_import_nothing_of_ours():
    assert not import_graph()["records"]


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    message = "\n".join(
        " -> ".join(cycle) + " via " + "; ".join(
            f"{a}->{b} at {', '.join(graph[a][b])}" for a, b in zip(cycle, cycle[1:], strict=False))
        for cycle in found)
    assert not found, f"{len(found)} import cycles between pyacemaker's parts:\n{message}"


def test_workdir_imports_only_errors():
    assert set(import_graph()["workdir"]) <= {"errors"}
