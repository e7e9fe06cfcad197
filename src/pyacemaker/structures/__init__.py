"""Structures: seeds, exploration, and the one helper everything shares."""

from __future__ import annotations

from ase import Atoms


def bare(atoms: Atoms) -> Atoms:
    """Independent copy with species, positions, cell and pbc only (no calculator, info,
    constraints or velocities)."""
    return Atoms(atoms.numbers, atoms.positions.copy(), cell=atoms.cell.array.copy(),
                 pbc=atoms.pbc.copy())
