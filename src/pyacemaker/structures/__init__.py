"""Structures: seeds, exploration, and the one helper everything shares."""

from __future__ import annotations

import warnings

from ase import Atoms


def bare(atoms: Atoms) -> Atoms:
    """Independent copy with species, positions, cell and pbc only (no calculator, info,
    constraints or velocities)."""
    return Atoms(atoms.numbers, atoms.positions.copy(), cell=atoms.cell.array.copy(),
                 pbc=atoms.pbc.copy())


def standardized(atoms: Atoms, to_primitive: bool) -> Atoms | None:
    """spglib's standardized primitive or conventional cell (positions not idealized), or
    ``None`` when spglib finds no symmetry."""
    import spglib

    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():  # spglib 2.x deprecation notice about error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            found = spglib.standardize_cell(cell, to_primitive, no_idealize=True, symprec=1e-3)
        except Exception:  # newer spglib error handling raises instead of returning None
            found = None
    if found is None:
        return None
    return Atoms(numbers=found[2], scaled_positions=found[1], cell=found[0], pbc=True)
