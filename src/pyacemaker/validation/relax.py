"""Structural relaxation with any ASE calculator, shared by every physical test."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from pyacemaker.errors import CalculationFailed

MAX_VOLUME_CHANGE = 0.5  # relative; beyond it the potential is collapsing or exploding the cell
MAX_DISPLACEMENT = 1.5  # Angstrom from the start; beyond it atoms are falling into each other


def relaxed(atoms: Atoms, calc: Calculator, cell: bool = False, fmax: float = 1e-3,
            max_steps: int = 300, stop: Callable[[], bool] | None = None) -> Atoms:
    """A copy of ``atoms`` relaxed with ``calc``: positions always, the cell too when ``cell``.
    ``stop``, called after every force evaluation, ends the relaxation early when it returns
    True (the structure where it did is returned).

    ``fmax`` is in eV/Angstrom (for the cell: the same number in eV/Angstrom^3 times volume, as
    ASE's cell filter defines it). The input is never modified. Returns the last structure
    when ``max_steps`` is reached; the caller sees the residual force in the result.

    Raises
    ------
    CalculationFailed
        The relaxation runs away: the volume changes by more than 50% or an atom moves more
        than 1.5 Angstrom (a broken potential collapses or explodes the structure).
    """
    out = atoms.copy()
    out.calc = calc
    start, volume = atoms.get_scaled_positions(wrap=False), atoms.get_volume()
    optimizer = BFGS(FrechetCellFilter(out) if cell else out, logfile=None)
    with warnings.catch_warnings():  # scipy's logm accuracy notes on large cell deformations
        warnings.simplefilter("ignore", RuntimeWarning)
        _run(optimizer, out, start, volume, fmax, max_steps, stop)
    return out


def _run(optimizer: BFGS, out: Atoms, start: np.ndarray, volume: float, fmax: float,
         max_steps: int, stop: Callable[[], bool] | None) -> None:
    """Step ``optimizer`` until converged or stopped, raising CalculationFailed on a runaway."""
    for _ in optimizer.irun(fmax=fmax, steps=max_steps):
        if stop is not None and stop():
            return
        change = out.get_volume() / volume - 1.0
        moved = float(np.linalg.norm((out.get_scaled_positions(wrap=False) - start)
                                     @ out.cell.array, axis=1).max())
        if abs(change) > MAX_VOLUME_CHANGE or moved > MAX_DISPLACEMENT:
            raise CalculationFailed(
                f"relaxation ran away after {optimizer.nsteps} steps (volume {100 * change:+.0f}%, "
                f"an atom moved {moved:.1f} Å): the potential has no minimum near this structure")
