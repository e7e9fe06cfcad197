"""Saddle searches with the current potential, stopped where it extrapolates.

The dimer method (ASE's ``MinModeTranslate``) climbs from a minimum, displaced at random around
one atom, to a first-order saddle; pushed along its unstable mode to either side and relaxed,
the saddle joins the start to a new minimum. A climbing-image NEB (ASE's ``NEB``) between the
two minima then gives the barrier along the path. Every force call of a search may go through
``GuardedCalculator``: once the extrapolation grade γ of any atom passes the halt threshold the
search raises ``Extrapolating`` with the configuration there, which becomes a candidate for
labelling, as MD's ``fix halt`` does. Rates follow harmonic transition-state theory,
``ν exp(-E_b / kT)``, with the prefactor ν given or from the Vineyard formula.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.geometry import find_mic
from ase.mep import NEB, DimerControl, MinModeAtoms, MinModeTranslate, interpolate
from ase.optimize import FIRE

from pyacemaker.errors import CalculationFailed
from pyacemaker.structures import bare
from pyacemaker.training.potential import AceZblCalculator, Potential

MINIMUM_FMAX = 0.01  # eV/Angstrom: a relaxed minimum
SADDLE_FMAX = 0.02  # eV/Angstrom: a converged dimer saddle
NEB_FMAX = 0.03  # eV/Angstrom: a converged climbing-image band
MAX_STEPS = {"minimum": 500, "dimer": 400, "neb": 400}
MODE_STEP = 0.1  # Angstrom along the saddle's unstable mode to each side before relaxing
SAME_STATE = 0.5  # Angstrom: minima whose atoms all lie closer than this are one state (soft
# relaxations of a vacancy end up to 0.2 Angstrom apart; a hop moves one atom ~2.5)
HESSIAN_STEP = 0.01  # Angstrom, central differences
RUNAWAY = 2.5  # Angstrom: an atom moved farther than this from the start in one search
_FREQUENCY = math.sqrt(units._e / units._amu) * 1e10 / (2 * math.pi)  # sqrt(eV/amu)/Angstrom/2pi -> Hz


class Extrapolating(Exception):
    """A search reached a configuration where the potential extrapolates (γ above the halt)."""

    def __init__(self, atoms: Atoms, gamma: float, stage: str = "") -> None:
        super().__init__(f"γ {gamma:.3g} above the halt threshold{f' ({stage})' if stage else ''}")
        self.atoms, self.gamma, self.stage = atoms, gamma, stage


class GuardedCalculator(AceZblCalculator):
    """The potential's calculator that raises ``Extrapolating`` (with a bare copy of the
    configuration) when any atom's γ exceeds ``gamma_halt``; counts force calls and keeps the
    largest γ it saw."""

    def __init__(self, potential: Potential, gamma_halt: float) -> None:
        super().__init__(potential, with_gamma=True)
        self.gamma_halt = gamma_halt
        self.calls = 0
        self.max_gamma = 0.0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        gamma = float(np.max(self.results["gamma"]))
        self.max_gamma = max(self.max_gamma, gamma)
        if gamma > self.gamma_halt:
            self.results = {}  # the next call recomputes instead of reusing the halted result
            raise Extrapolating(bare(atoms if atoms is not None else self.atoms), gamma)


@dataclass(frozen=True)
class Saddle:
    """A first-order saddle: its configuration, energy (eV) and unstable mode (unit vector,
    shape ``(n_atoms, 3)``)."""

    atoms: Atoms
    energy: float
    mode: np.ndarray


@dataclass(frozen=True)
class Band:
    """A converged climbing-image band: its images (ends included), their energies (eV), and
    the index of the highest image (the saddle)."""

    images: list[Atoms]
    energies: list[float]

    @property
    def top(self) -> int:
        return int(np.argmax(self.energies))

    @property
    def barrier(self) -> float:
        """Forward barrier, eV."""
        return self.energies[self.top] - self.energies[0]

    @property
    def reverse_barrier(self) -> float:
        """Barrier from the final state back, eV."""
        return self.energies[self.top] - self.energies[-1]


def minimized(atoms: Atoms, calc: Calculator, fmax: float = MINIMUM_FMAX,
              steps: int = MAX_STEPS["minimum"]) -> Atoms:
    """A copy of ``atoms`` relaxed in its positions (FIRE) with ``calc``.

    Raises
    ------
    CalculationFailed
        Not converged to ``fmax`` (eV/Angstrom) in ``steps``, or an atom ran away.
    """
    out = bare(atoms)
    out.calc = calc
    if not _optimize(FIRE(out, logfile=None), out, atoms, fmax, steps, "relaxation"):
        raise CalculationFailed(f"relaxation did not reach {fmax} eV/Å in {steps} steps")
    out.calc = None
    return out


def dimer_search(minimum: Atoms, calc: Calculator, rng: np.random.Generator, center: int,
                 radius: float = 3.0, magnitude: float = 0.15) -> Saddle | None:
    """A saddle found by the dimer method from ``minimum`` displaced at random (Gaussian,
    ``magnitude`` Angstrom per component) in the atoms within ``radius`` Angstrom of atom
    ``center``; ``None`` when the search does not converge or ends at a point that is not a
    first-order saddle (curvature not negative, energy not above the minimum)."""
    atoms = bare(minimum)
    atoms.calc = calc
    start_energy = atoms.get_potential_energy()
    control = DimerControl(logfile=None, eigenmode_logfile=None, initial_eigenmode_method="gauss",
                           displacement_method="gauss", gauss_std=magnitude, max_num_rot=2)
    with warnings.catch_warnings():  # ASE's note that no mask was given: the radius is one
        warnings.simplefilter("ignore", UserWarning)
        dimer = MinModeAtoms(atoms, control, random_seed=int(rng.integers(2**31)))
        dimer.displace(displacement_center=center, radius=radius, mic=True, log=False)
        try:
            converged = _optimize(MinModeTranslate(dimer, logfile=None), dimer, minimum,
                                  SADDLE_FMAX, MAX_STEPS["dimer"], "dimer search")
        except CalculationFailed:
            return None
    energy = float(dimer.get_potential_energy())
    if not converged or dimer.get_curvature() >= 0 or energy <= start_energy + 1e-3:
        return None
    mode = np.array(dimer.get_eigenmode()).reshape(-1, 3)
    return Saddle(bare(dimer.atoms), energy, mode / np.linalg.norm(mode))


def connected_minimum(minimum: Atoms, saddle: Saddle, calc: Calculator) -> Atoms | None:
    """The minimum on the other side of ``saddle`` from ``minimum``: the saddle pushed
    ``MODE_STEP`` along its mode each way and relaxed. ``None`` when neither side relaxes back
    to ``minimum`` (the saddle does not belong to it) or both do."""
    sides = []
    for sign in (1.0, -1.0):
        pushed = bare(saddle.atoms)
        pushed.positions += sign * MODE_STEP * saddle.mode
        sides.append(minimized(pushed, calc))
    back = [max_displacement(minimum, side) < SAME_STATE for side in sides]
    if back.count(True) != 1:
        return None
    return sides[back.index(False)]  # not back: it moved at least SAME_STATE


def neb_path(initial: Atoms, final: Atoms, calc: Calculator, images: int = 5,
             fmax: float = NEB_FMAX, steps: int = MAX_STEPS["neb"], climb: bool = True,
             via: Atoms | None = None) -> Band:
    """The climbing-image NEB (improved tangent, ``images`` moving images, one shared
    calculator) between two relaxed minima; a plain NEB when not ``climb``. The first band runs
    straight (minimum image convention) through ``via`` (a saddle already found, whose
    neighbourhood the potential knows), else it is placed by the image-dependent pair potential
    (IDPP): a straight line would squeeze atoms together, far from anything labelled.

    Raises
    ------
    CalculationFailed
        The band did not converge to ``fmax`` (eV/Angstrom) in ``steps``.
    """
    if via is None:
        band = [bare(initial)] + [bare(initial) for _ in range(images)] + [bare(final)]
    else:
        half = images // 2
        first = [bare(initial)] + [bare(initial) for _ in range(half)] + [bare(via)]
        second = [bare(via)] + [bare(via) for _ in range(images - half - 1)] + [bare(final)]
        for part in (first, second):
            interpolate(part, mic=True)
        band = first + second[1:]
    for image in band:
        image.calc = calc
    neb = NEB(band, climb=climb, method="improvedtangent", allow_shared_calculator=True)
    if via is None:
        neb.interpolate("idpp", mic=True)
    optimizer = FIRE(neb, logfile=None)
    if not optimizer.run(fmax=fmax, steps=steps):
        raise CalculationFailed(f"the NEB did not converge to {fmax} eV/Å in {steps} steps")
    energies = [float(image.get_potential_energy()) for image in band]
    for image in band:
        image.calc = None
    return Band(band, energies)


def vineyard_prefactor(minimum: Atoms, saddle: Atoms, calc: Calculator,
                       at_minimum: np.ndarray | None = None) -> float | None:
    """Vineyard's harmonic prefactor, Hz: the product of the minimum's normal-mode
    frequencies over the product of the saddle's real ones, the rigid translations (three in a
    periodic cell) left out of both. ``at_minimum``: the minimum's ``vibrational_eigenvalues``
    when already known (every process out of one state shares them). ``None`` when ``minimum``
    has an unstable mode or ``saddle`` has not exactly one."""
    if at_minimum is None:
        at_minimum = vibrational_eigenvalues(minimum, calc)
    at_saddle = vibrational_eigenvalues(saddle, calc)
    if at_minimum[0] <= 0 or at_saddle[0] >= 0 or at_saddle[1] <= 0:
        return None
    log_ratio = 0.5 * (np.log(at_minimum).sum() - np.log(at_saddle[1:]).sum())
    return float(_FREQUENCY * math.exp(log_ratio))


def vibrational_eigenvalues(atoms: Atoms, calc: Calculator) -> np.ndarray:
    """Eigenvalues of the mass-weighted Hessian, eV/(amu Angstrom^2), ascending, without the
    rigid translations (the 3 smallest in magnitude; 6 for a molecule, rotations included)."""
    hessian = hessian_matrix(atoms, calc)
    masses = np.repeat(atoms.get_masses(), 3)
    weighted = hessian / np.sqrt(np.outer(masses, masses))
    values = np.linalg.eigvalsh((weighted + weighted.T) / 2)
    rigid = 3 if all(atoms.pbc) else 6
    return np.sort(values[np.argsort(np.abs(values))[rigid:]])


def hessian_matrix(atoms: Atoms, calc: Calculator, step: float = HESSIAN_STEP) -> np.ndarray:
    """The Hessian by central differences of the forces, eV/Angstrom^2, shape ``(3n, 3n)``."""
    probe = bare(atoms)
    probe.calc = calc
    n = len(atoms)
    hessian = np.empty((3 * n, 3 * n))
    for k in range(3 * n):
        forces = []
        for sign in (1.0, -1.0):
            probe.positions = atoms.positions
            probe.positions[k // 3, k % 3] += sign * step
            forces.append(probe.get_forces().ravel())
        hessian[k] = -(forces[0] - forces[1]) / (2 * step)
    return hessian


def rate(barrier: float, prefactor: float, temperature_k: float) -> float:
    """Harmonic transition-state rate, Hz: ``prefactor`` (Hz) times the Boltzmann factor of
    ``barrier`` (eV) at ``temperature_k``."""
    return prefactor * math.exp(-barrier / (units.kB * temperature_k))


def displacements(a: Atoms, b: Atoms) -> np.ndarray:
    """Distance (Angstrom, minimum image) of every atom in ``b`` from itself in ``a``, shape
    ``(n_atoms,)``."""
    vectors, _ = find_mic(b.positions - a.positions, a.cell, a.pbc)
    return np.linalg.norm(vectors, axis=1)


def max_displacement(a: Atoms, b: Atoms) -> float:
    """Largest distance (Angstrom, minimum image) between the same atom in ``a`` and ``b``."""
    return float(displacements(a, b).max())


def _optimize(optimizer, atoms, start: Atoms, fmax: float, steps: int, what: str) -> bool:
    """Step ``optimizer`` to ``fmax`` within ``steps``; True when converged.

    Raises
    ------
    CalculationFailed
        An atom moved more than ``RUNAWAY`` from ``start`` (the search fell apart).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for converged in optimizer.irun(fmax=fmax, steps=steps):
            moved = max_displacement(start, bare(getattr(atoms, "atoms", atoms)))
            if moved > RUNAWAY:
                raise CalculationFailed(f"{what} ran away: an atom moved {moved:.1f} Å")
            if converged:
                return True
    return False
