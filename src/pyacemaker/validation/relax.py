"""Structural relaxation with any ASE calculator, shared by every physical test."""

from __future__ import annotations

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS


def relaxed(atoms: Atoms, calc: Calculator, cell: bool = False, fmax: float = 1e-3,
            max_steps: int = 300) -> Atoms:
    """A copy of ``atoms`` relaxed with ``calc``: positions always, the cell too when ``cell``.

    ``fmax`` is in eV/Angstrom (for the cell: the same number in eV/Angstrom^3 times volume, as
    ASE's cell filter defines it). The input is never modified. Returns the last structure
    when ``max_steps`` is reached; the caller sees the residual force in the result.
    """
    out = atoms.copy()
    out.calc = calc
    target = FrechetCellFilter(out) if cell else out
    BFGS(target, logfile=None).run(fmax=fmax, steps=max_steps)
    return out
