"""The oracle's phonons restricted to a local potential's reach.

A potential of cutoff rc cannot reproduce force constants between atoms further apart than it
sees; a long-ranged oracle (CHGNet) has them. The oracle's force constants are rebuilt from its
stored displacement forces, zeroed beyond a radius (minimum-image distances in the supercell)
and made translation invariant again: the phonons a perfect local fit of the oracle would have.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from phonopy import Phonopy
from pydantic import BaseModel, Field

from pyacemaker.validation.phonons import (
    PhononResult,
    phonon_result,
    phonopy_model,
    produce_force_constants,
)


class DisplacementForces(BaseModel):
    """phonopy's displacement dataset of one phonon calculation: enough to rebuild its force
    constants without a single force call."""

    atoms: list[int] = Field(description="displaced supercell atom of each displaced supercell")
    displacements: list[list[float]] = Field(description="displacement vectors, Angstrom, [n_disp][3]")
    forces: list[list[list[float]]] = Field(description="supercell forces, eV/Angstrom, "
                                            "[n_disp][n_supercell_atoms][3]")

    @classmethod
    def of(cls, phonon: Phonopy) -> DisplacementForces:
        """The dataset of ``phonon`` (displacements with forces, phonopy's type 1)."""
        first = phonon.dataset["first_atoms"]
        return cls(atoms=[int(d["number"]) for d in first],
                   displacements=[np.asarray(d["displacement"], float).tolist() for d in first],
                   forces=[np.asarray(d["forces"], float).tolist() for d in first])

    def model(self, atoms: Atoms, supercell: list[list[int]]) -> Phonopy:
        """The phonopy model of unit cell ``atoms`` on ``supercell`` with the force constants of
        these forces, symmetrised as :func:`~pyacemaker.validation.phonons.force_constants` does."""
        phonon = phonopy_model(atoms, supercell)
        phonon.dataset = {"natom": len(phonon.supercell), "first_atoms": [
            {"number": n, "displacement": np.array(d), "forces": np.array(f)}
            for n, d, f in zip(self.atoms, self.displacements, self.forces, strict=True)]}
        return produce_force_constants(phonon)


REACH_PER_CUTOFF = 2.0  # force constants of a many-body potential of cutoff rc reach 2 rc


def reach_radius(cutoff: float) -> float:
    """How far (Angstrom) the force constants of a local many-body potential of ``cutoff``
    (Angstrom) reach: 2 x the cutoff, since atoms i and j up to 2 rc apart are both neighbours of
    a third atom whose energy depends on both.

    Measured (``force_constants`` on wide supercells, then :func:`restrict_force_constants`; RMS
    over a 20^3 mesh of the restricted minus the model's own frequencies): EMT Cu (cutoff 5.88 Å,
    weakly many-body, 8^3 supercell) moves by 0.001 THz restricted at rc and 0.000 at 2 rc; a linear
    ACE of EMT Cu (rc 5.28 Å, 11^3) by 0.009 and 0.000; a linear ACE of CHGNet rutile TiO2 (rc 6.4
    Å, 4x4x6 supercell) by 0.30 THz at rc, 0.67 at 1.5 rc and 0.002 at 2 rc. Only 2 rc reproduces
    a strictly local model's own phonons, so a radius of rc would charge a perfect local fit with
    an error it cannot remove. CHGNet itself on that rutile supercell: 1.33 THz at 6.4 Å, 0.25 at
    12.8 Å (its Gamma instability stays within 12.8 Å).
    """
    return REACH_PER_CUTOFF * cutoff


def pair_distances(phonon: Phonopy) -> np.ndarray:
    """Minimum-image distance (Angstrom) from each primitive atom to each supercell atom, the rows
    of phonopy's compact force constants: an array (n_primitive, n_supercell)."""
    primitive = phonon.primitive
    vectors, multiplicity = primitive.get_smallest_vectors()  # dense format, primitive basis
    first = vectors[multiplicity[:, :, 1]]  # (n_supercell, n_primitive, 3): one shortest each
    return np.linalg.norm(first @ primitive.cell, axis=-1).T


def restrict_force_constants(phonon: Phonopy, radius: float) -> Phonopy:
    """``phonon`` (changed in place and returned) with its force constants zeroed between atoms
    further apart than ``radius`` (Angstrom, minimum image in the supercell) and each atom's self
    term set to minus the sum of those it keeps (the acoustic sum rule, symmetrised): what a
    model that sees no further than ``radius`` can have."""
    p2s = phonon.primitive.p2s_map
    compact = np.array(phonon.force_constants[p2s] if phonon.force_constants.shape[0] != len(p2s)
                       else phonon.force_constants)
    compact[pair_distances(phonon) > radius + 1e-6] = 0.0
    for p, s in enumerate(p2s):
        compact[p, s] = 0.0
        self_term = -compact[p].sum(axis=0)
        compact[p, s] = 0.5 * (self_term + self_term.T)
    phonon.force_constants = compact
    return phonon


def force_constant_reach(phonon: Phonopy, threshold: float = 1e-4) -> float:
    """Largest minimum-image distance (Angstrom) at which a force-constant block of ``phonon``
    exceeds ``threshold`` (eV/Angstrom^2, largest |element|): how far its model interacts within
    the supercell."""
    p2s = phonon.primitive.p2s_map
    fc = phonon.force_constants
    compact = fc[p2s] if fc.shape[0] != len(p2s) else fc
    big = np.abs(compact).max(axis=(2, 3)) > threshold
    return float(pair_distances(phonon)[big].max())


class ReachLimited(BaseModel):
    """The oracle's phonons restricted to a radius and how much they moved."""

    radius: float = Field(description="force constants kept up to this distance, Angstrom")
    supercell_reach: float = Field(description="largest minimum-image distance between atoms of the "
                                   "oracle's phonon supercell, Angstrom: a radius beyond it removes nothing")
    removed_pairs: int = Field(description="force-constant blocks (primitive atom, supercell atom) zeroed")
    long_range_rms_thz: float = Field(description="RMS of full minus restricted oracle frequencies over "
                                      "the mesh (weighted by multiplicity) and all bands, THz")
    long_range_max_thz: float = Field(description="largest |full minus restricted| on the mesh, THz")
    phonons: PhononResult = Field(description="the restricted oracle's bands, mesh and verdict")


def reach_limited(structure: Atoms, full: PhononResult, forces: DisplacementForces,
                  radius: float) -> ReachLimited:
    """The oracle's phonons with force constants only up to ``radius`` (Angstrom), on the same
    supercell, band path, mesh and tolerances as its ``full`` result computed on ``structure``
    (the oracle's relaxed unit cell) from ``forces``.

    Raises
    ------
    ValueError
        ``forces`` do not belong to ``full``'s supercell.
    """
    phonon = forces.model(structure, full.supercell_matrix)
    distances = pair_distances(phonon)
    restricted = restrict_force_constants(phonon, radius)
    result = phonon_result(restricted, tolerance_thz=full.tolerance_thz,
                           acoustic_tolerance_thz=full.acoustic_tolerance_thz,
                           gamma_radius=full.gamma_radius, path=(full.path, full.path_names),
                           displacement=full.displacement)
    diff = np.sort(result.mesh_frequencies_thz, axis=1) - np.sort(full.mesh_frequencies_thz, axis=1)
    weights = np.array(full.mesh_weights, float)[:, None]
    return ReachLimited(
        radius=radius, supercell_reach=float(distances.max()),
        removed_pairs=int((distances > radius + 1e-6).sum()),
        long_range_rms_thz=float(np.sqrt(np.sum(weights * diff**2) / (weights.sum() * diff.shape[1]))),
        long_range_max_thz=float(np.abs(diff).max()), phonons=result)
