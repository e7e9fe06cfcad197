"""Structures: seeds, strategies, policy, embedding, and the helpers everything shares."""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from ase.neighborlist import natural_cutoffs, neighbor_list

NEIGHBOUR_FACTOR = 1.2  # of the sum of covalent radii: atoms closer than this are bonded


def bare(atoms: Atoms) -> Atoms:
    """Independent copy with species, positions, cell and pbc only (no calculator, info,
    constraints or velocities)."""
    return Atoms(atoms.numbers, atoms.positions.copy(), cell=atoms.cell.array.copy(),
                 pbc=atoms.pbc.copy())


VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # ASE's stress order: xx yy zz yz xz xy


def voigt_strained(atoms: Atoms, component: int, value: float) -> Atoms:
    """A bare copy of ``atoms`` under the symmetric strain whose Voigt ``component`` (0-5) is
    ``value`` (engineering shear: half on each off-diagonal element), atoms moving with the
    cell."""
    a, b = VOIGT[component]
    strain = np.zeros((3, 3))
    strain[a, b] = strain[b, a] = value if a == b else value / 2
    out = bare(atoms)
    out.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return out


def supercell_matrix(atoms: Atoms, min_width: float) -> list[list[int]]:
    """Diagonal supercell matrix whose three face-to-face widths are all >= ``min_width`` (Angstrom)."""
    inverse_widths = np.linalg.norm(atoms.cell.reciprocal(), axis=1)  # 1/Angstrom, no 2*pi
    n = np.maximum(1, np.ceil(min_width * inverse_widths - 1e-8)).astype(int)
    return np.diag(n).tolist()


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


def vacuum_gap(atoms: Atoms) -> float:
    """The widest empty layer of the cell, Angstrom: over the three lattice planes, the
    largest gap between consecutive atomic planes (periodic), times the planes' spacing."""
    widest = 0.0
    for axis in range(3):
        spacing = atoms.get_volume() / np.linalg.norm(
            np.cross(*np.delete(atoms.cell.array, axis, axis=0)))
        layers = np.sort(atoms.get_scaled_positions()[:, axis] % 1.0)
        gaps = np.diff(np.append(layers, layers[0] + 1.0))
        widest = max(widest, float(gaps.max()) * spacing)
    return widest


def defect_atoms(atoms: Atoms) -> np.ndarray:
    """Indices of the atoms whose coordination (neighbours within ``NEIGHBOUR_FACTOR`` times
    the sum of covalent radii) differs from the most common one of their species: the
    neighbours of a vacancy, an interstitial, surface atoms. Empty for a perfect crystal."""
    i = neighbor_list("i", atoms, natural_cutoffs(atoms, mult=NEIGHBOUR_FACTOR))
    coordination = np.bincount(i, minlength=len(atoms))
    out = []
    for number in set(atoms.numbers):
        mine = np.flatnonzero(atoms.numbers == number)
        typical = np.bincount(coordination[mine]).argmax()
        out += [int(k) for k in mine if coordination[k] != typical]
    return np.array(sorted(out), dtype=int)
