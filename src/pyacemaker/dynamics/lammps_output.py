"""Streaming readers for LAMMPS output: the log (thermo rows, halt, errors) and custom dumps.

Files are read line by line; a dump yields one frame at a time, so a long trajectory never sits
in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism

from pyacemaker.errors import ParseError

HALT_LINE = re.compile(r"Fix halt condition for fix-id \S+ met on step (\d+) with value (\S+)")


@dataclass
class LogSummary:
    """What a LAMMPS log says about its run."""

    thermo: list[dict[str, float]] = field(default_factory=list)
    halt_step: int | None = None
    halt_value: float | None = None
    error: str | None = None

    @property
    def last_step(self) -> int | None:
        return int(self.thermo[-1]["Step"]) if self.thermo else None


def read_log(path: Path) -> LogSummary:
    """Thermo rows (keyed by the header names), the ``fix halt`` step and value, and the first
    ``ERROR`` message. A missing log gives an empty summary."""
    summary = LogSummary()
    if not path.is_file():
        return summary
    header: list[str] | None = None
    with path.open(errors="replace") as lines:
        for line in lines:
            words = line.split()
            if not words:
                continue
            if words[0] == "Step":
                header = words
            elif words[0] == "Loop":
                header = None
            elif line.startswith("ERROR") and summary.error is None:
                summary.error = line.strip()
            elif match := HALT_LINE.search(line):
                summary.halt_step, summary.halt_value = int(match[1]), float(match[2])
            elif header and len(words) == len(header):
                row = _floats(words)
                if row is not None:
                    summary.thermo.append(dict(zip(header, row, strict=True)))
    return summary


def iter_dump(path: Path, elements: list[str], prism: Prism | None = None,
              ) -> Iterator[tuple[int, Atoms]]:
    """Frames of a ``dump custom`` file with columns ``id type x y z`` (plus per-atom extras,
    stored as ``atoms.arrays``; ``f_pace_gamma`` becomes ``gamma``), sorted by id.

    ``elements[t - 1]`` is the element of LAMMPS type ``t``. With ``prism`` (the one that
    wrote the data file) cells and positions are rotated back into the ASE frame.
    Raises ParseError naming the file and line when the dump is malformed.
    """
    if not path.is_file():
        return
    with path.open(errors="replace") as lines:  # binary garbage: a ParseError, not a decode error
        number = 0
        while True:
            line = lines.readline()
            number += 1
            if not line:
                return
            if not line.startswith("ITEM: TIMESTEP"):
                raise ParseError(f"{path}:{number}: expected 'ITEM: TIMESTEP', got {line.strip()!r}")
            try:
                frame, used = _read_frame(lines, elements, prism)
            except (ValueError, IndexError, StopIteration) as err:
                raise ParseError(f"{path}: malformed frame after line {number}: {err}") from err
            number += used
            yield frame


def _line(lines) -> str:
    """The next whole line; a file cut mid-line (a crash, a full disk) ends in a partial number
    that would still parse, so it is an error."""
    line = next(lines)
    if not line.endswith("\n"):
        raise ValueError(f"the file ends mid-line ({line.strip()!r}): it was cut short")
    return line


def _read_frame(lines, elements: list[str], prism: Prism | None) -> tuple[tuple[int, Atoms], int]:
    step = int(_line(lines))
    _line(lines)  # ITEM: NUMBER OF ATOMS
    n_atoms = int(_line(lines))
    bounds_item = _line(lines)
    bounds = np.array([[float(v) for v in _line(lines).split()] for _ in range(3)])
    columns = _line(lines).split()[2:]
    table = np.array([[float(v) for v in _line(lines).split()] for _ in range(n_atoms)])
    table = table[np.argsort(table[:, columns.index("id")])]
    origin, cell = _box(bounds, "xy" in bounds_item)
    positions = table[:, [columns.index(c) for c in ("x", "y", "z")]] - origin
    if prism is not None:
        cell = prism.update_cell(cell)
        positions = prism.vector_to_ase(positions)
    types = table[:, columns.index("type")].astype(int)
    if types.min() < 1 or types.max() > len(elements):
        raise ValueError(f"atom types {types.min()}..{types.max()} outside 1..{len(elements)}")
    atoms = Atoms([elements[t - 1] for t in types], positions=positions, cell=cell, pbc=True)
    for name in columns:
        if name not in ("id", "type", "x", "y", "z"):
            atoms.arrays["gamma" if name == "f_pace_gamma" else name] = table[:, columns.index(name)]
    return (step, atoms), 8 + n_atoms


def _box(bounds: np.ndarray, triclinic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Origin and cell (rows a, b, c) from dump box bounds, tilted or not."""
    xy, xz, yz = bounds[:, 2] if triclinic else (0.0, 0.0, 0.0)
    xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = bounds[1, 0] - min(0.0, yz)
    yhi = bounds[1, 1] - max(0.0, yz)
    zlo, zhi = bounds[2, :2]
    cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    return np.array([xlo, ylo, zlo]), cell


def _floats(words: list[str]) -> list[float] | None:
    try:
        return [float(w) for w in words]
    except ValueError:
        return None
