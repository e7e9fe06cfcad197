"""Harmonic phonons by finite displacements (phonopy) with any ASE calculator."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import seekpath
from ase import Atoms
from ase.calculators.calculator import Calculator
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms
from phonopy.structure.cells import PrimitiveMatrixAutoDefaultWarning
from pydantic import BaseModel, Field

from pyacemaker.errors import CalculationFailed

GREEK = {"GAMMA": "Γ", "SIGMA": "Σ", "DELTA": "Δ", "LAMBDA": "Λ"}
MAX_REPORTED = 10


class PhononResult(BaseModel):
    """Band structure, DOS and stability verdict of one structure."""

    supercell_matrix: list[list[int]] = Field(description="Diagonal supercell matrix on the unit cell.")
    n_displacements: int = Field(description="Displaced supercells computed (after phonopy's symmetry).")
    distances: list[list[float]] = Field(
        description="Path length at each q-point, per segment, in 1/Angstrom without 2*pi (phonopy's).")
    frequencies_thz: list[list[list[float]]] = Field(
        description="Frequencies in THz per segment, [n_q][n_bands]; imaginary ones are negative.")
    labels: list[str] = Field(description="Tick labels at segment ends; 'X|K' marks a jump in the path.")
    label_positions: list[float] = Field(description="Path lengths of the ticks, 1/Angstrom without 2*pi.")
    dos_frequencies_thz: list[float] = Field(description="Frequency grid of the total DOS, THz.")
    dos: list[float] = Field(description="Total DOS per primitive cell, states/THz (integral 3 n_prim).")
    min_frequency_thz: float = Field(description="Lowest frequency on the path and the mesh, THz.")
    imaginary: list[tuple[list[float], float]] = Field(
        description="Up to 10 worst offending q-points (fractional, primitive reciprocal cell) and "
                    "their lowest frequency in THz, most negative first.")
    stable: bool = Field(description="True when no mode is imaginary beyond the tolerances.")
    tolerance_thz: float = Field(description="Frequencies above -tolerance_thz count as real, THz.")


def supercell_matrix(atoms: Atoms, min_width: float) -> list[list[int]]:
    """Diagonal supercell matrix whose three face-to-face widths are all >= ``min_width`` (Angstrom)."""
    inverse_widths = np.linalg.norm(atoms.cell.reciprocal(), axis=1)  # 1/Angstrom, no 2*pi
    n = np.maximum(1, np.ceil(min_width * inverse_widths - 1e-8)).astype(int)
    return np.diag(n).tolist()


def _to_phonopy(atoms: Atoms) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())


def _seekpath_bands(phonon: Phonopy, n_points: int) -> tuple[list[np.ndarray], list[list[str]]]:
    """q-points (fractional, phonopy's primitive reciprocal basis) and end labels of each segment.

    seekpath's coordinates refer to its own standardized (possibly rotated and re-based) primitive
    cell; they are mapped through Cartesian space onto phonopy's primitive cell.
    """
    prim = phonon.primitive
    path = seekpath.get_path((prim.cell, prim.scaled_positions, prim.numbers))
    seek_cell = np.array(path["primitive_lattice"]) @ np.array(path["rotation_matrix"])
    to_phonopy = np.linalg.inv(seek_cell).T @ prim.cell.T  # fractional seekpath -> fractional phonopy
    coords = {k: np.array(v) @ to_phonopy for k, v in path["point_coords"].items()}
    steps = np.linspace(0.0, 1.0, n_points)[:, None]
    bands = [coords[a] + steps * (coords[b] - coords[a]) for a, b in path["path"]]
    return bands, [[_label(a), _label(b)] for a, b in path["path"]]


def _label(point: str) -> str:
    """seekpath's point name with Greek letters: 'GAMMA' -> 'Γ', 'SIGMA_0' -> 'Σ_0'."""
    head, sep, tail = point.partition("_")
    return GREEK.get(head, head) + sep + tail


def _distance_to_gamma(qpoints: np.ndarray, reciprocal: np.ndarray) -> np.ndarray:
    """Cartesian distance (1/Angstrom, no 2*pi) of fractional ``qpoints`` (n, 3) to the nearest Gamma."""
    shifts = np.array(np.meshgrid(*[[-1, 0, 1]] * 3)).reshape(3, -1).T
    reduced = qpoints - np.round(qpoints)
    return np.linalg.norm((reduced[:, None, :] + shifts[None]) @ reciprocal, axis=2).min(axis=1)


def phonons(atoms: Atoms, calc: Calculator, min_width: float = 9.0, displacement: float = 0.01,
            tolerance_thz: float = 0.1, acoustic_tolerance_thz: float = 0.5, gamma_radius: float = 0.1,
            band_points: int = 51, mesh: int = 20,
            progress: Callable[[int, int], None] | None = None) -> PhononResult:
    """Phonon bands along seekpath's standard path, total DOS and dynamical stability.

    Parameters
    ----------
    atoms
        Relaxed unit cell (never modified); phonopy finds the primitive cell (``"auto"``).
    calc
        ASE calculator giving forces in eV/Angstrom.
    min_width
        Minimum face-to-face width of the diagonal supercell, Angstrom.
    displacement
        Finite displacement amplitude, Angstrom.
    tolerance_thz, acoustic_tolerance_thz
        A mode is imaginary below ``-tolerance_thz``; the three lowest branches within
        ``gamma_radius`` (Cartesian, 1/Angstrom without 2*pi) of Gamma only below
        ``-acoustic_tolerance_thz``. Both the band path and the mesh are checked.
    band_points
        q-points per path segment, end points included.
    mesh
        Gamma-centred mesh of ``mesh`` x ``mesh`` x ``mesh`` points for the DOS and the check.
    progress
        Called as ``progress(done, total)`` after each displaced supercell.

    Returns
    -------
    PhononResult
        Bands per path segment (THz, imaginary as negative), DOS per primitive cell, verdict.

    Raises
    ------
    CalculationFailed
        When the calculator returns non-finite forces.
    """
    matrix = supercell_matrix(atoms, min_width)
    with warnings.catch_warnings():  # phonopy 4 warns that "auto" differs from v3; we chose it
        warnings.simplefilter("ignore", PrimitiveMatrixAutoDefaultWarning)
        phonon = Phonopy(_to_phonopy(atoms), supercell_matrix=matrix, primitive_matrix="auto")
    phonon.generate_displacements(distance=displacement)
    cells = phonon.supercells_with_displacements
    forces = []
    for i, cell in enumerate(cells):
        displaced = Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        displaced.calc = calc
        f = displaced.get_forces()
        if not np.all(np.isfinite(f)):
            raise CalculationFailed(f"non-finite forces in displaced supercell {i + 1}/{len(cells)} "
                                    f"({len(displaced)} atoms, {atoms.get_chemical_formula()})")
        forces.append(f)
        if progress is not None:
            progress(i + 1, len(cells))
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()

    bands, names = _seekpath_bands(phonon, band_points)
    phonon.run_band_structure(bands)
    band = phonon.band_structure
    phonon.run_mesh([mesh] * 3, is_gamma_center=True)
    phonon.run_total_dos()

    labels = [names[0][0]]
    for (_, end), (start, _) in zip(names[:-1], names[1:], strict=True):
        labels.append(end if end == start else f"{end}|{start}")
    labels.append(names[-1][1])
    positions = [float(band.distances[0][0])] + [float(d[-1]) for d in band.distances]

    qpoints = np.concatenate([*band.qpoints, phonon.mesh.qpoints])
    freqs = np.concatenate([*band.frequencies, phonon.mesh.frequencies])
    floor = np.full(freqs.shape, -tolerance_thz)
    near_gamma = _distance_to_gamma(qpoints, np.linalg.inv(phonon.primitive.cell).T) <= gamma_radius
    floor[near_gamma, :3] = -acoustic_tolerance_thz
    bad = (freqs < floor).any(axis=1)
    offending = {tuple((np.round(q, 6) + 0.0).tolist()): float(f.min())  # dedupe repeated q-points
                 for q, f in zip(qpoints[bad], freqs[bad], strict=True)}
    worst = sorted(offending.items(), key=lambda item: item[1])[:MAX_REPORTED]
    return PhononResult(
        supercell_matrix=matrix, n_displacements=len(cells),
        distances=[d.tolist() for d in band.distances],
        frequencies_thz=[f.tolist() for f in band.frequencies],
        labels=labels, label_positions=positions,
        dos_frequencies_thz=phonon.total_dos.frequency_points.tolist(), dos=phonon.total_dos.dos.tolist(),
        min_frequency_thz=float(freqs.min()),
        imaginary=[(list(q), f) for q, f in worst], stable=not worst, tolerance_thz=tolerance_thz)
