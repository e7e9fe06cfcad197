"""Choose which candidates to label: extrapolation grade (gamma) and D-optimal MaxVol
selection against the current potential's active set (pyace.aceselect)."""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from pyacemaker.structures import bare
from pyacemaker.timing import engine_call
from pyacemaker.training.potential import Potential

log = logging.getLogger(__name__)


def max_gamma(potential: Potential, structures: list[Atoms]) -> np.ndarray:
    """Largest per-atom extrapolation grade of each structure, shape ``(n,)``."""
    calc = potential.calculator(with_gamma=True)
    grades = []
    for atoms in structures:
        copy = bare(atoms)
        copy.calc = calc
        copy.get_potential_energy()
        grades.append(float(np.max(calc.results["gamma"])))
    return np.array(grades)


def select(potential: Potential, structures: list[Atoms], gammas: np.ndarray, n: int,
           gamma_collect: float, require_extrapolation: bool) -> list[int]:
    """Indices of at most ``n`` structures to label, most informative first.

    While the targets are not met (``require_extrapolation`` false) every candidate may be
    chosen; once they are, only candidates with gamma above ``gamma_collect``. MaxVol picks the
    structures that enlarge the active set's volume; remaining slots are filled by descending
    gamma.
    """
    if n <= 0 or not structures:
        return []
    if require_extrapolation:
        pool = [i for i, g in enumerate(gammas) if g > gamma_collect]
    else:
        pool = list(range(len(structures)))
    if not pool:
        return []
    chosen = [pool[i] for i in _maxvol_order(potential, [structures[i] for i in pool])][:n]
    rest = sorted((i for i in pool if i not in chosen), key=lambda i: -gammas[i])
    return chosen + rest[: n - len(chosen)]


def _maxvol_order(potential: Potential, structures: list[Atoms]) -> list[int]:
    """Structures selected by MaxVol against the existing active set, best first."""
    import pandas as pd
    from pyace import BBasisConfiguration
    from pyace.activelearning import load_active_inverse_set

    logging.getLogger("pyace").setLevel(logging.WARNING)
    from pyace.aceselect import select_structures_maxvol

    bconf = BBasisConfiguration(str(potential.gamma_yaml))
    active_inverse = load_active_inverse_set(str(potential.asi))
    active = {species: np.linalg.pinv(inv) for species, inv in active_inverse.items()}
    frame = pd.DataFrame({"ase_atoms": [bare(a) for a in structures]})
    with engine_call():
        selected = select_structures_maxvol(frame, bconf, extra_A0_projections_dict=active,
                                            batch_size_option="none")
    return [int(i) for i in selected.index]
