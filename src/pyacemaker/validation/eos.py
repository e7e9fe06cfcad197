"""Equation of state: energies of isotropically strained cells and a Birch-Murnaghan fit."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.units import GPa
from pydantic import BaseModel, Field

from pyacemaker.errors import CalculationFailed
from pyacemaker.validation.relax import relaxed


class EosResult(BaseModel):
    """A Birch-Murnaghan fit E(V) and the points it was fitted to."""

    volumes: list[float] = Field(description="Angstrom^3/atom")
    energies: list[float] = Field(description="eV/atom")
    v0: float = Field(description="equilibrium volume, Angstrom^3/atom")
    e0: float = Field(description="equilibrium energy, eV/atom")
    b0_gpa: float = Field(description="bulk modulus, GPa")
    b0_prime: float = Field(description="pressure derivative of the bulk modulus")

    @property
    def bracketed(self) -> bool:
        """The minimum lies inside the sampled volumes."""
        return min(self.volumes) < self.v0 < max(self.volumes)


def strained_cells(atoms: Atoms, calc: Calculator, max_strain: float, n_points: int = 7,
                   progress: Callable[[int, int], None] | None = None) -> list[Atoms]:
    """``n_points`` copies of ``atoms`` with linear strains from ``-max_strain`` to
    ``+max_strain``, ions relaxed with ``calc`` at fixed cell (the input is not modified).
    ``progress(done, total)`` is called after each cell."""
    cells = []
    for i, strain in enumerate(np.linspace(-max_strain, max_strain, n_points)):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * (1.0 + strain), scale_atoms=True)
        cells.append(relaxed(scaled, calc, cell=False, fmax=1e-3) if len(atoms) > 1 else scaled)
        if progress is not None:
            progress(i + 1, n_points)
    return cells


def fit_birch_murnaghan(cells: list[Atoms], energies: list[float]) -> EosResult:
    """Fit E(V) of ``cells`` with total ``energies`` (eV).

    Raises
    ------
    CalculationFailed
        The energies are not finite or have no minimum the fit can find.
    """
    n = len(cells[0])
    volumes = np.array([c.get_volume() / n for c in cells])
    per_atom = np.asarray(energies, float) / n
    if not np.all(np.isfinite(per_atom)):
        raise CalculationFailed("non-finite energy along the equation of state")
    eos = EquationOfState(volumes, per_atom, eos="birchmurnaghan")
    try:
        with warnings.catch_warnings():  # an unbracketed minimum is reported by ``bracketed``
            warnings.simplefilter("ignore", UserWarning)
            v0, e0, b0 = eos.fit()
    except (RuntimeError, ValueError) as err:
        raise CalculationFailed(f"Birch-Murnaghan fit failed ({err}): E(V) has no minimum "
                                "near the structure") from err
    b0_prime = float(eos.eos_parameters[2])
    if not np.isfinite([v0, e0, b0, b0_prime]).all():
        raise CalculationFailed("Birch-Murnaghan fit gave non-finite parameters")
    return EosResult(volumes=volumes.tolist(), energies=per_atom.tolist(), v0=float(v0),
                     e0=float(e0), b0_gpa=float(b0 / GPa), b0_prime=b0_prime)


def energies_of(cells: list[Atoms], calc: Calculator) -> list[float]:
    """Total energies (eV) of ``cells`` with ``calc``."""
    out = []
    for cell in cells:
        atoms = cell.copy()
        atoms.calc = calc
        out.append(float(atoms.get_potential_energy()))
    return out


def equation_of_state(ground: Atoms, calc: Calculator, max_strain: float,
                      progress: Callable[[int, int], None] | None = None) -> EosResult:
    """Birch-Murnaghan fit of ``calc`` on ``strained_cells`` around the relaxed ``ground``
    (linear strains up to ``max_strain``, ions relaxed)."""
    cells = strained_cells(ground, calc, max_strain, progress=progress)
    return fit_birch_murnaghan(cells, energies_of(cells, calc))
