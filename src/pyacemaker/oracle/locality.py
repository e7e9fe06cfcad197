"""The oracle's locality: how much of its force on an atom comes from atoms beyond a radius R.

A local potential of cutoff R cannot see atoms farther than R, so whatever they do to the
oracle's forces it cannot fit. The probe measures it directly: a supercell wide enough for a
sphere of radius R is rattled; then, for a few central atoms of each element, the atoms
farther than R from the central atom (minimum image) get a fresh, independent rattle of the
same amplitude, and the central atom's force change is recorded. Both cells are equally likely
samples with the same surroundings within R, so a model that sees only those predicts the same
force for both: its force RMSE (per component) is at least about spread / sqrt(2), the
``floor``. For a site-energy model such as ACE the force on an atom also feels, through its
neighbours' many-body terms, atoms up to 2R away, so at R the floor is an estimate rather than
a strict bound (strict at 2R). The energy is not probed: a cell's total energy changes when
distant atoms move whatever the reach, and oracles give no per-atom energies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import make_supercell
from ase.calculators.calculator import BaseCalculator
from pydantic import BaseModel, Field

from pyacemaker.errors import CalculationFailed
from pyacemaker.oracle.base import Oracle
from pyacemaker.structures import bare, standardized, supercell_matrix

Progress = Callable[[int, int], None]  # (calls done, calls in total)
Forces = Callable[[Atoms], np.ndarray]  # a cell -> its forces, eV/Angstrom, [n_atoms][3]


class LocalitySettings(BaseModel):
    """How the probe samples: radii, rattle, how many central atoms and redraws, cell size."""

    factors: list[float] = Field(
        [0.8, 1.0, 1.25], description="radii as multiples of the potential's cutoff (used "
                                       "when ``radii`` is empty); the cutoff itself is always probed")
    radii: list[float] = Field(default_factory=list, description="radii R to probe, Angstrom")
    rattle: float = Field(0.08, gt=0, description="standard deviation of every displacement "
                                                  "component, Angstrom")
    centres: int = Field(2, ge=1, description="central atoms per element")
    redraws: int = Field(1, ge=1, description="independent outer rattles per central atom")
    margin: float = Field(1.0, ge=0, description="supercell widths exceed 2 max(R) by this, "
                                                 "Angstrom")
    max_atoms: int = Field(1000, ge=1, description="largest supercell; radii above the cutoff "
                                                   "that would need more are left out")
    seed: int = Field(0, ge=0, description="seed of the rattles")


class LocalityProbe(BaseModel):
    """What atoms beyond R do to the oracle's forces: no local potential of cutoff R fits it
    below ``floor`` (eV/Angstrom, force RMSE per component)."""

    oracle: str = Field(description="the oracle's engine name")
    cutoff: float = Field(description="the potential's cutoff, Angstrom")
    radii: list[float] = Field(description="probed radii R, Angstrom, ascending")
    force_spread: list[float] = Field(
        description="per radius: RMS change of a central atom's force component when the atoms "
                    "beyond R are rattled afresh, eV/Angstrom (all central atoms)")
    force_spread_by_element: dict[str, list[float]] = Field(
        description="the same per element of the central atom, eV/Angstrom")
    floor: list[float] = Field(
        description="per radius: force_spread / sqrt(2), the force RMSE per component no model "
                    "seeing only atoms within R gets below, eV/Angstrom")
    n_atoms: int = Field(description="atoms in the probed supercell")
    supercell_matrix: list[list[int]] = Field(description="on the given structure's cell (or its "
                                                          "conventional cell), 3x3")
    n_calls: int = Field(description="oracle calls made")
    seconds: float = Field(description="wall time of the probe, s")
    settings: LocalitySettings

    def floor_at(self, radius: float) -> float:
        """The floor at the probed radius nearest ``radius`` (Angstrom), eV/Angstrom."""
        k = int(np.argmin(np.abs(np.asarray(self.radii) - radius)))
        return self.floor[k]

    def sentence(self, radius: float | None = None) -> str:
        """The probe's meaning at ``radius`` (default: the cutoff), one sentence."""
        radius = self.cutoff if radius is None else radius
        k = int(np.argmin(np.abs(np.asarray(self.radii) - radius)))
        r = self.radii[k]
        return (f"no local potential of cutoff {r:g} Å fits this oracle below "
                f"{self.floor[k]:.3g} eV/Å (force RMSE per component; atoms beyond {r:g} Å move "
                f"its forces by {self.force_spread[k]:.3g} eV/Å RMS)")


def probe_radii(cutoff: float, settings: LocalitySettings) -> list[float]:
    """The radii to probe, Angstrom, ascending: ``settings.radii`` or ``settings.factors`` times
    ``cutoff``, and ``cutoff`` itself."""
    radii = settings.radii or [f * cutoff for f in settings.factors]
    return sorted({round(r, 2) for r in radii if r > 0 and abs(r - cutoff) > 0.005} | {cutoff})


def probe_calls(n_elements: int, cutoff: float, settings: LocalitySettings) -> int:
    """Oracle calls of a probe of a structure with ``n_elements`` elements (at most)."""
    return 1 + len(probe_radii(cutoff, settings)) * n_elements * settings.centres * settings.redraws


def probe_cell(structure: Atoms, radius: float, margin: float) -> tuple[Atoms, list[list[int]]]:
    """The smallest diagonal supercell, of ``structure`` or of its conventional cell, whose
    face-to-face widths all exceed ``2 * radius + margin`` (Angstrom), and its matrix."""
    cells = [bare(structure)]
    conventional = standardized(structure, to_primitive=False)
    if conventional is not None:
        cells.append(conventional)
    options = []
    for cell in cells:
        matrix = supercell_matrix(cell, 2 * radius + margin)
        options.append((len(cell) * round(abs(np.linalg.det(matrix))), cell, matrix))
    _, cell, matrix = min(options, key=lambda option: option[0])
    return make_supercell(cell, np.array(matrix)), matrix


def fitting_radii(structure: Atoms, radii: list[float], cutoff: float,
                  settings: LocalitySettings) -> list[float]:
    """``radii`` without the largest ones above ``cutoff`` whose supercell would exceed
    ``settings.max_atoms`` (the cutoff's own cell is built whatever its size)."""
    kept = list(radii)
    while kept[-1] > cutoff and len(probe_cell(structure, kept[-1], settings.margin)[0]) > settings.max_atoms:
        kept.pop()
    return kept


def central_atoms(atoms: Atoms, per_element: int) -> dict[str, list[int]]:
    """Up to ``per_element`` atom indices of each element, spread evenly over its atoms."""
    symbols = np.array(atoms.get_chemical_symbols())
    out = {}
    for element in dict.fromkeys(symbols):
        indices = np.flatnonzero(symbols == element)
        picks = np.linspace(0, len(indices) - 1, min(per_element, len(indices))).round().astype(int)
        out[str(element)] = [int(indices[p]) for p in dict.fromkeys(picks)]
    return out


def force_function(oracle: BaseCalculator | Oracle) -> Forces:
    """Forces of a cell by an ASE calculator or an ``Oracle``; a failed label raises
    CalculationFailed with its reason."""
    if isinstance(oracle, BaseCalculator):
        def forces(atoms: Atoms) -> np.ndarray:
            cell = atoms.copy()
            oracle.reset()
            cell.calc = oracle
            try:
                return np.asarray(cell.get_forces())
            except Exception as err:  # noqa: BLE001 - any engine failure, with its reason
                raise CalculationFailed(f"locality probe: the oracle failed on the {len(atoms)}-"
                                        f"atom supercell ({type(err).__name__}: {err})") from err
        return forces

    def labelled(atoms: Atoms) -> np.ndarray:
        result = oracle.label(atoms.copy())
        if not result.ok:
            raise CalculationFailed(f"locality probe: the oracle failed on the {len(atoms)}-atom "
                                    f"supercell ({result.reason})")
        return np.asarray(result.forces)
    return labelled


def _rms(values: list[np.ndarray]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values else math.nan


def probe_locality(structure: Atoms, oracle: BaseCalculator | Oracle, cutoff: float,
                   settings: LocalitySettings | None = None, oracle_name: str = "oracle",
                   progress: Progress | None = None) -> LocalityProbe:
    """Measure how much atoms beyond each radius R move ``oracle``'s force on an atom.

    ``structure`` is a periodic cell (never modified), ``cutoff`` the potential's cutoff
    (Angstrom). Costs ``1 + n_radii * n_central * settings.redraws`` oracle calls on one
    supercell; ``progress(done, total)`` is called after each.

    Raises
    ------
    CalculationFailed
        When the oracle fails on a cell (with its reason).
    """
    settings = settings or LocalitySettings()
    start = time.perf_counter()
    radii = fitting_radii(structure, probe_radii(cutoff, settings), cutoff, settings)
    cell, matrix = probe_cell(structure, radii[-1], settings.margin)
    centres = central_atoms(cell, settings.centres)
    total = 1 + len(radii) * sum(map(len, centres.values())) * settings.redraws
    calls = 0
    compute = force_function(oracle)

    def forces(atoms: Atoms) -> np.ndarray:
        nonlocal calls
        out = compute(atoms)
        calls += 1
        if progress:
            progress(calls, total)
        return out

    changes = force_changes(cell, centres, radii, settings, forces)
    spread = [_rms([d for group in changes[r].values() for d in group]) for r in radii]
    return LocalityProbe(
        oracle=oracle_name, cutoff=cutoff, radii=radii, force_spread=spread,
        force_spread_by_element={e: [_rms(changes[r][e]) for r in radii] for e in centres},
        floor=[s / math.sqrt(2) for s in spread], n_atoms=len(cell), supercell_matrix=matrix,
        n_calls=calls, seconds=time.perf_counter() - start, settings=settings)


def force_changes(cell: Atoms, centres: dict[str, list[int]], radii: list[float],
                  settings: LocalitySettings, forces: Forces) -> dict[float, dict[str, list[np.ndarray]]]:
    """Per radius and element, the force changes (eV/Angstrom, [3] each) of the ``centres`` of
    the unrattled supercell ``cell`` when the atoms beyond the radius get a fresh rattle."""
    ideal = cell.positions
    base = np.random.default_rng([settings.seed]).normal(0.0, settings.rattle, ideal.shape)
    reference = forces(_displaced(cell, base))
    changes: dict[float, dict[str, list[np.ndarray]]] = {r: {e: [] for e in centres} for r in radii}
    for element, group in centres.items():
        for c, k in ((c, k) for c in group for k in range(settings.redraws)):
            fresh = np.random.default_rng([settings.seed, c, k + 1]).normal(0.0, settings.rattle,
                                                                             ideal.shape)
            distance = cell.get_distances(c, range(len(cell)), mic=True)
            for r in radii:
                moved = np.where((distance > r)[:, None], fresh, base)
                changes[r][element].append(forces(_displaced(cell, moved))[c] - reference[c])
    return changes


def _displaced(cell: Atoms, displacements: np.ndarray) -> Atoms:
    """A copy of ``cell`` with its atoms displaced by ``displacements`` (Angstrom, [n][3])."""
    out = cell.copy()
    out.positions = cell.positions + displacements
    return out
