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
from pyacemaker.structures import supercell_matrix

GREEK = {"GAMMA": "Γ", "SIGMA": "Σ", "DELTA": "Δ", "LAMBDA": "Λ"}
MAX_REPORTED = 10


class PhononResult(BaseModel):
    """Band structure, DOS, mesh frequencies and stability verdict of one structure."""

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
    acoustic_tolerance_thz: float = Field(
        0.5, description="Floor of the three modes nearest zero within gamma_radius of Gamma, THz.")
    gamma_radius: float = Field(
        0.1, description="Radius of the acoustic floor around Gamma, 1/Angstrom without 2*pi.")
    displacement: float | None = Field(None, description="Finite displacement amplitude, Angstrom.")
    primitive_matrix: list[list[float]] = Field(
        default_factory=list, description="phonopy's primitive matrix on the unit cell, 3x3.")
    path: list[list[list[float]]] = Field(
        default_factory=list, description="Band path segment ends, [n_segments][2][3], fractional "
                                          "coordinates in the primitive reciprocal basis.")
    path_names: list[list[str]] = Field(default_factory=list,
                                        description="Names of the segment ends, [n_segments][2].")
    mesh_qpoints: list[list[float]] = Field(
        default_factory=list, description="Irreducible q-points of the Gamma-centred mesh, [n_q][3], "
                                          "fractional in the primitive reciprocal basis.")
    mesh_weights: list[int] = Field(default_factory=list, description="Multiplicity of each mesh q-point.")
    mesh_frequencies_thz: list[list[float]] = Field(
        default_factory=list, description="Frequencies at the mesh q-points in THz, [n_q][n_bands].")


def _to_phonopy(atoms: Atoms) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions(), masses=atoms.get_masses())


def phonopy_model(atoms: Atoms, supercell: list[list[int]]) -> Phonopy:
    """An empty phonopy model of ``atoms`` (never modified) on the 3x3 ``supercell`` matrix;
    phonopy finds the primitive cell (``"auto"``)."""
    with warnings.catch_warnings():  # phonopy 4 warns that "auto" differs from v3; we chose it
        warnings.simplefilter("ignore", PrimitiveMatrixAutoDefaultWarning)
        return Phonopy(_to_phonopy(atoms), supercell_matrix=supercell, primitive_matrix="auto")


def produce_force_constants(phonon: Phonopy) -> Phonopy:
    """``phonon`` with symmetrised force constants from the forces of its displacement dataset
    (changed in place and returned)."""
    phonon.produce_force_constants(show_drift=False)
    phonon.symmetrize_force_constants(show_drift=False)
    return phonon


def force_constants(atoms: Atoms, calc: Calculator, supercell: list[list[int]], displacement: float,
                    progress: Callable[[int, int], None] | None = None) -> Phonopy:
    """A phonopy model of ``atoms`` with symmetrised force constants from ``calc``'s forces.

    ``supercell`` is the 3x3 supercell matrix on the unit cell, ``displacement`` the finite
    displacement amplitude in Angstrom; ``progress(done, total)`` is called after each displaced
    supercell. ``atoms`` is never modified; phonopy finds the primitive cell (``"auto"``). The
    displaced atoms and their supercell forces stay in the model's ``dataset``.

    Raises
    ------
    CalculationFailed
        When the calculator returns non-finite forces.
    """
    phonon = phonopy_model(atoms, supercell)
    phonon.generate_displacements(distance=displacement)
    cells = phonon.supercells_with_displacements
    forces = []
    for i, cell in enumerate(cells):
        displaced = Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)
        displaced.calc = calc
        f = displaced.get_forces()
        if not np.all(np.isfinite(f)):
            raise CalculationFailed(f"non-finite forces in displaced supercell {i + 1}/{len(cells)} "
                                    f"({len(displaced)} atoms, {atoms.get_chemical_formula(mode='metal')})")
        forces.append(f)
        if progress is not None:
            progress(i + 1, len(cells))
    phonon.forces = np.array(forces)
    return produce_force_constants(phonon)


def seekpath_path(phonon: Phonopy) -> tuple[list[list[list[float]]], list[list[str]]]:
    """Segment ends (fractional, phonopy's primitive reciprocal basis) and their names.

    seekpath's coordinates refer to its own standardized (possibly rotated and re-based) primitive
    cell; they are mapped through Cartesian space onto phonopy's primitive cell.
    """
    prim = phonon.primitive
    path = seekpath.get_path((prim.cell, prim.scaled_positions, prim.numbers))
    seek_cell = np.array(path["primitive_lattice"]) @ np.array(path["rotation_matrix"])
    to_phonopy = np.linalg.inv(seek_cell).T @ prim.cell.T  # fractional seekpath -> fractional phonopy
    coords = {k: np.array(v) @ to_phonopy for k, v in path["point_coords"].items()}
    ends = [[coords[a].tolist(), coords[b].tolist()] for a, b in path["path"]]
    return ends, [[_label(a), _label(b)] for a, b in path["path"]]


def _label(point: str) -> str:
    """seekpath's point name with Greek letters: 'GAMMA' -> 'Γ', 'SIGMA_0' -> 'Σ_0'."""
    head, sep, tail = point.partition("_")
    return GREEK.get(head, head) + sep + tail


def _distance_to_gamma(qpoints: np.ndarray, reciprocal: np.ndarray) -> np.ndarray:
    """Cartesian distance (1/Angstrom, no 2*pi) of fractional ``qpoints`` (n, 3) to the nearest Gamma."""
    shifts = np.array(np.meshgrid(*[[-1, 0, 1]] * 3)).reshape(3, -1).T
    reduced = qpoints - np.round(qpoints)
    return np.linalg.norm((reduced[:, None, :] + shifts[None]) @ reciprocal, axis=2).min(axis=1)


def reciprocal_cell(phonon: Phonopy) -> np.ndarray:
    """Reciprocal basis (rows, 1/Angstrom without 2*pi) of ``phonon``'s primitive cell, (3, 3)."""
    return np.linalg.inv(phonon.primitive.cell).T


def imaginary_rows(qpoints: np.ndarray, frequencies: np.ndarray, reciprocal: np.ndarray,
                   tolerance_thz: float, acoustic_tolerance_thz: float, gamma_radius: float) -> np.ndarray:
    """Which q-points have an imaginary mode: a boolean array (n_q,).

    ``qpoints`` (n_q, 3) are fractional in the ``reciprocal`` basis (3, 3, rows, 1/Angstrom
    without 2*pi), ``frequencies`` (n_q, n_bands) in THz. A mode is imaginary below
    ``-tolerance_thz``; within ``gamma_radius`` (1/Angstrom, no 2*pi) of Gamma the three modes
    nearest zero, the acoustic ones, only below ``-acoustic_tolerance_thz``, so an unstable
    optical mode at Gamma is never excused as acoustic noise.
    """
    floor = np.full(frequencies.shape, -tolerance_thz)
    near = _distance_to_gamma(qpoints, reciprocal) <= gamma_radius
    if near.any():
        acoustic = np.argsort(np.abs(frequencies[near]), axis=1)[:, :3]
        relaxed_floor = floor[near]
        np.put_along_axis(relaxed_floor, acoustic, -acoustic_tolerance_thz, axis=1)
        floor[near] = relaxed_floor
    return (frequencies < floor).any(axis=1)


def frequencies_at(phonon: Phonopy, qpoints: np.ndarray) -> np.ndarray:
    """Frequencies (THz, imaginary as negative, ascending) at fractional ``qpoints`` (n_q, 3) of
    ``phonon``'s primitive reciprocal basis: an array (n_q, n_bands)."""
    return np.sort(phonon.run_qpoints(np.atleast_2d(qpoints)).frequencies, axis=1)


def phonon_result(phonon: Phonopy, tolerance_thz: float = 0.1, acoustic_tolerance_thz: float = 0.5,
                  gamma_radius: float = 0.1, band_points: int = 51, mesh: int = 20,
                  path: tuple[list[list[list[float]]], list[list[str]]] | None = None,
                  displacement: float | None = None) -> PhononResult:
    """Bands, total DOS, mesh frequencies and stability verdict of a phonopy model with force
    constants; ``path`` (segment ends, names) defaults to seekpath's, ``displacement`` (Angstrom)
    is only recorded. The other arguments are those of :func:`phonons`."""
    ends, names = path if path is not None else seekpath_path(phonon)
    steps = np.linspace(0.0, 1.0, band_points)[:, None]
    phonon.run_band_structure([np.array(a) + steps * (np.array(b) - np.array(a)) for a, b in ends])
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
    bad = imaginary_rows(qpoints, freqs, reciprocal_cell(phonon), tolerance_thz, acoustic_tolerance_thz,
                         gamma_radius)
    offending = {tuple((np.round(q, 6) + 0.0).tolist()): float(f.min())  # dedupe repeated q-points
                 for q, f in zip(qpoints[bad], freqs[bad], strict=True)}
    worst = sorted(offending.items(), key=lambda item: item[1])[:MAX_REPORTED]
    return PhononResult(
        supercell_matrix=np.asarray(phonon.supercell_matrix).astype(int).tolist(),
        n_displacements=len(phonon.supercells_with_displacements),
        distances=[d.tolist() for d in band.distances],
        frequencies_thz=[f.tolist() for f in band.frequencies],
        labels=labels, label_positions=positions,
        dos_frequencies_thz=phonon.total_dos.frequency_points.tolist(), dos=phonon.total_dos.dos.tolist(),
        min_frequency_thz=float(freqs.min()),
        imaginary=[(list(q), f) for q, f in worst], stable=not worst, tolerance_thz=tolerance_thz,
        acoustic_tolerance_thz=acoustic_tolerance_thz, gamma_radius=gamma_radius,
        displacement=displacement, primitive_matrix=np.asarray(phonon.primitive_matrix).tolist(),
        path=ends, path_names=names, mesh_qpoints=phonon.mesh.qpoints.tolist(),
        mesh_weights=phonon.mesh.weights.astype(int).tolist(),
        mesh_frequencies_thz=phonon.mesh.frequencies.tolist())


def phonons(atoms: Atoms, calc: Calculator, min_width: float = 9.0, displacement: float = 0.01,
            tolerance_thz: float = 0.1, acoustic_tolerance_thz: float = 0.5, gamma_radius: float = 0.1,
            band_points: int = 51, mesh: int = 20, progress: Callable[[int, int], None] | None = None,
            supercell: list[list[int]] | None = None,
            path: tuple[list[list[list[float]]], list[list[str]]] | None = None) -> PhononResult:
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
        A mode is imaginary below ``-tolerance_thz``; the three modes nearest zero within
        ``gamma_radius`` (Cartesian, 1/Angstrom without 2*pi) of Gamma only below
        ``-acoustic_tolerance_thz``. Both the band path and the mesh are checked.
    band_points
        q-points per path segment, end points included.
    mesh
        Gamma-centred mesh of ``mesh`` x ``mesh`` x ``mesh`` points for the DOS and the check.
    progress
        Called as ``progress(done, total)`` after each displaced supercell.
    supercell, path
        Supercell matrix (3x3) and band path (segment ends, names; see :class:`PhononResult`) to use
        instead of the ones from ``min_width`` and seekpath, e.g. another result's.

    Returns
    -------
    PhononResult
        Bands per path segment (THz, imaginary as negative), DOS per primitive cell, verdict.

    Raises
    ------
    CalculationFailed
        When the calculator returns non-finite forces.
    """
    matrix = supercell if supercell is not None else supercell_matrix(atoms, min_width)
    phonon = force_constants(atoms, calc, matrix, displacement, progress)
    return phonon_result(phonon, tolerance_thz, acoustic_tolerance_thz, gamma_radius, band_points, mesh,
                         path, displacement)
