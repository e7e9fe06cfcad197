"""Periodic embedding: a small DFT-sized cell cut around one atom of a large structure.

All atoms within ``cutoff + buffer`` of the centre atom (periodic images included) go into a
cubic cell, with the centre in the middle and a gap between the sphere and its periodic images.
The centre's neighbourhood within ``cutoff`` is then identical to the parent's. Atoms whose own
cutoff sphere reaches beyond the cut (farther than ``buffer`` from the centre) see an artificial
boundary: their force weight is zero, and so is the energy weight of the whole cell.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

BOUNDARY_GAP = 2.0  # Angstrom between the cut sphere and its periodic images


def embed(atoms: Atoms, center: int, cutoff: float, buffer: float) -> tuple[Atoms, np.ndarray]:
    """The embedded cell around ``atoms[center]`` and its per-atom force weights (1 inside
    ``buffer`` of the centre, 0 near the boundary). Atom 0 of the result is the centre."""
    radius = cutoff + buffer
    i, j, offsets = neighbor_list("ijD", atoms, radius)
    mine = i == center
    vectors = np.vstack([np.zeros(3), offsets[mine]])
    numbers = np.concatenate([[atoms.numbers[center]], atoms.numbers[j[mine]]])
    side = 2 * radius + BOUNDARY_GAP
    cell = Atoms(numbers, positions=vectors + side / 2, cell=np.eye(3) * side, pbc=True)
    weights = (np.linalg.norm(vectors, axis=1) <= buffer).astype(float)
    return cell, weights
