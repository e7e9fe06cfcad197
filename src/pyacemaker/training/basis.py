"""The linear ACE basis a run's data can carry, chosen by measurement.

The candidates are every combination of the cutoffs, radial bases and sizes (functions per
element) that ``trainer`` leaves open (``auto``). The size is bounded by the fit's rows and a
cost cap (``size_limit``), not by the extrapolation grade: γ comes from a basis of its own size
(``gamma_limit``, the rule of every earlier release; ``gamma_basis``) with the chosen cutoff
and radial functions. For each cutoff and radial basis the design rows are computed once, at the
largest size: pyace ranks a basis's functions the same way at every size, so a smaller basis is
a subset of a larger one and its rows are a column slice. Each candidate is scored by k-fold
cross-validation of the fit (energies and forces; stresses only enter the final fit), through
per-fold Gram matrices, so a candidate costs a few small solves; its score sums its energy and
force errors, each relative to the best candidate's (``scored``). The chosen basis is the
smallest (then the shortest cutoff) within ``PARSIMONY`` of the best score: the cheapest model
that the data cannot tell from the best.

Measured on TiO2/CHGNet (``../shared/probes/tio2_capacity.py``, DESIGN.md): at 6.4 Å the MD
force error falls from 0.138 to 0.059 eV/Å between 150 and 800 functions per element, 5 Å beats
6.4 Å at every size, and ChebExpCos keeps short-range resolution at long cutoffs where SBessel
loses it. Those are the axes searched here.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ase import Atoms

from pyacemaker.config import TargetsConfig, TrainerConfig, default_cutoff
from pyacemaker.errors import CalculationFailed
from pyacemaker.records import BasisChoice, BasisScore, BasisSpec
from pyacemaker.timing import engine_call

log = logging.getLogger(__name__)

MIN_FUNCTIONS = 8
ROWS_PER_FUNCTION = 4  # force + energy rows per coefficient, keeps the fit overdetermined
ATOMS_PER_FUNCTION = 4  # atoms of the rarest element per function: symmetric cells repeat
# environments, and an active set built from too few distinct ones makes gamma explode
GAMMA_MAX_FUNCTIONS = 300  # γ's basis as every earlier release had it (≤ 300 functions), on which
# the collect and halt thresholds (5, 25) and the rare-event tests were set
SIZES = (25, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1200, 1600)  # functions per element
CUTOFF_FACTORS = (0.8, 1.0)  # of the bond-length default (config.default_cutoff), for cutoff: auto
MIN_CUTOFF = 4.0  # Angstrom
RADIAL_BASES = ("SBessel", "ChebExpCos")  # tried for radial_basis: auto
FOLDS = 5
PARSIMONY = 0.02  # a cheaper basis within 2% of the best cross-validated score is preferred


def size_limit(structures: list[Atoms], elements: list[str], cap: int) -> tuple[int, str]:
    """The largest basis (functions per element) the fit can determine, and what sets it:
    ``ROWS_PER_FUNCTION`` energy and force rows per coefficient, and ``cap`` (the cost)."""
    rows = sum(3 * len(a) + 1 for a in structures) // (ROWS_PER_FUNCTION * len(elements))
    if rows < cap:
        return rows, f"{rows * ROWS_PER_FUNCTION * len(elements)} fit rows ({ROWS_PER_FUNCTION} per " \
            "coefficient)"
    return cap, "trainer.max_functions_per_element"


def gamma_limit(structures: list[Atoms], elements: list[str]) -> tuple[int, str]:
    """The largest basis whose active set the data can give (``ATOMS_PER_FUNCTION`` atoms of
    the rarest element per function, at most ``GAMMA_MAX_FUNCTIONS``), and a sentence saying
    so. Measured on the quickstart's 84 TiO2 structures (961 Ti atoms, 5.12 Å): the held-out
    γ (90th percentile) is 3.1 at 240 functions per element, 19 at 480, 151 at 720 and ~2000 at
    960, while the force error keeps falling (0.160, 0.123, 0.117, 0.113 eV/Å): past this limit
    γ is meaningless, not the fit.

    Raises
    ------
    CalculationFailed
        Too little data for the smallest basis.
    """
    per_element = Counter(s for a in structures for s in a.get_chemical_symbols())
    rarest = min(elements, key=lambda e: per_element.get(e, 0))
    n = per_element.get(rarest, 0) // ATOMS_PER_FUNCTION
    if n < MIN_FUNCTIONS:
        raise CalculationFailed(
            f"too little data to fit: {per_element.get(rarest, 0)} atoms of {rarest}; at least "
            f"{MIN_FUNCTIONS * ATOMS_PER_FUNCTION} are needed (label more structures first)")
    if n > GAMMA_MAX_FUNCTIONS:
        return GAMMA_MAX_FUNCTIONS, f"at most {GAMMA_MAX_FUNCTIONS} functions, the thresholds' calibration"
    return n, f"{per_element[rarest]} {rarest} atoms ({ATOMS_PER_FUNCTION} per function)"


def candidate_specs(settings: TrainerConfig, elements: list[str], limit: int) -> list[BasisSpec]:
    """Every basis ``settings`` leaves open, up to ``limit`` functions per element (at least
    ``MIN_FUNCTIONS``)."""
    limit = max(limit, MIN_FUNCTIONS)
    if settings.cutoff == "auto":
        default = default_cutoff(elements)
        cutoffs = sorted({round(max(MIN_CUTOFF, f * default), 2) for f in CUTOFF_FACTORS})
    else:
        cutoffs = [settings.cutoff]
    radial = RADIAL_BASES if settings.radial_basis == "auto" else (settings.radial_basis,)
    if settings.functions_per_element == "auto":
        sizes = sorted({n for n in SIZES if n < limit} | {limit})
    else:
        sizes = [settings.functions_per_element]
    return [BasisSpec(cutoff=c, radial_basis=r, functions_per_element=n)
            for c in cutoffs for r in radial for n in sizes]


def basis_config(spec: BasisSpec, elements: list[str]):
    """pyace BBasisConfiguration of a linear ACE (one density, linear embedding)."""
    from pyace import create_multispecies_basis_config

    return create_multispecies_basis_config({
        "deltaSplineBins": 0.001,
        "elements": elements,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1],
                               "ndensity": 1}},
        "bonds": {"ALL": {"radbase": spec.radial_basis, "radparameters": [5.25],
                          "rcut": spec.cutoff, "dcut": 0.01}},
        "functions": {"number_of_functions_per_element": spec.functions_per_element,
                      "ALL": {"nradmax_by_orders": [15, 6, 4, 3, 2],
                              "lmax_by_orders": [0, 4, 3, 2, 1]}},
    })


def _function_keys(bconf) -> list[tuple]:
    """One key per design-matrix column of ``bconf``'s basis, in column order."""
    from pyace import ACEBBasisSet

    basis = ACEBBasisSet(bconf)
    return [(e, f.mu0, tuple(f.mus), tuple(f.ns), tuple(f.ls), tuple(f.LS))
            for e, (rank1, higher) in enumerate(zip(basis.basis_rank1, basis.basis, strict=True))
            for f in (*rank1, *higher)]


def group_columns(largest: BasisSpec, elements: list[str]) -> dict[tuple, int]:
    """The column of each function of ``largest``'s basis, by key (built once per group)."""
    return {key: k for k, key in enumerate(_function_keys(basis_config(largest, elements)))}


def columns_in(index: dict[tuple, int], spec: BasisSpec, elements: list[str]) -> np.ndarray:
    """``spec``'s columns in a larger basis's ``index`` (``group_columns``)."""
    keys = _function_keys(basis_config(spec, elements))
    missing = [k for k in keys if k not in index]
    if missing:  # pyace ranked functions differently at the two sizes
        raise RuntimeError(f"{len(missing)} functions of {spec} are not in the larger basis")
    return np.array([index[k] for k in keys])


@dataclass
class DesignRows:
    """A linear fit's rows: per-atom energy rows, then three force rows per atom (pyace's
    order), with targets, loss weights and the structure of each row."""

    matrix: np.ndarray  # (n_rows, n_columns)
    target: np.ndarray  # (n_rows,): eV/atom for energy rows, eV/Angstrom for force rows
    weights: np.ndarray  # (n_rows,)
    structure: np.ndarray  # (n_rows,) index of the structure the row belongs to
    is_force: np.ndarray  # (n_rows,) bool


def design_rows(spec: BasisSpec, elements: list[str], df: pd.DataFrame, weights: np.ndarray,
                workers: int) -> DesignRows:
    """pyace's design matrix of ``df`` (a delta DataFrame, ``linear.delta_dataframe``) for
    ``spec``; ``weights`` are the energy and force rows' loss weights in pyace's order."""
    from pyace.linearacefit import LinearACEDataset

    dataset = LinearACEDataset(basis_config(spec, elements), df)
    with engine_call():
        dataset.construct_design_matrix(max_workers=workers)
    n = len(df)
    atoms = df["ase_atoms"].map(len).to_numpy()
    structure = np.concatenate([np.arange(n), np.repeat(np.arange(n), 3 * atoms)])
    return DesignRows(dataset.get_design_matrix(), dataset.get_target_vector(), weights,
                      structure, np.arange(len(structure)) >= n)


def solve(gram: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients from the weighted normal equations ``(G + alpha I) c = b``."""
    return np.linalg.solve(gram + alpha * np.eye(len(gram)), rhs)


def cross_validated(rows: DesignRows, specs: list[BasisSpec], columns: dict[BasisSpec, np.ndarray],
                    alpha: float, scored: np.ndarray) -> list[BasisScore]:
    """Scores of ``specs`` (all on ``rows``' cutoff and radial basis; ``columns[spec]`` slices
    ``rows``) by ``FOLDS``-fold cross-validation over structures, on the rows of the
    ``scored`` structures (boolean, per structure): the target classes."""
    n = len(scored)
    fold_of = np.random.default_rng(0).permutation(n)[rows.structure] % min(FOLDS, n)
    sqrt_w = np.sqrt(rows.weights)
    grams, rhs = [], []
    for f in range(min(FOLDS, n)):
        x = rows.matrix[fold_of == f] * sqrt_w[fold_of == f, None]
        grams.append(x.T @ x)
        rhs.append(x.T @ (rows.target[fold_of == f] * sqrt_w[fold_of == f]))
    gram_all, rhs_all = sum(grams), sum(rhs)
    energy, force = ~rows.is_force & scored[rows.structure], rows.is_force & scored[rows.structure]
    scores = []
    for spec in specs:
        c = columns[spec]
        residual = np.empty(len(rows.target))
        for f, (gram, b) in enumerate(zip(grams, rhs, strict=True)):
            held = fold_of == f
            coefficients = solve((gram_all - gram)[np.ix_(c, c)], (rhs_all - b)[c], alpha)
            residual[held] = rows.matrix[np.ix_(held, c)] @ coefficients - rows.target[held]
        e_rmse = 1000 * float(np.sqrt(np.mean(residual[energy] ** 2)))
        f_rmse = float(np.sqrt(np.mean(residual[force] ** 2)))
        scores.append(BasisScore(spec=spec, energy_rmse=e_rmse, force_rmse=f_rmse, score=0.0))
    return scores


def choose(scores: list[BasisScore]) -> tuple[BasisSpec, str]:
    """The cheapest spec within ``PARSIMONY`` of the best loss, and why."""
    best = min(scores, key=lambda s: s.score)
    cheap = min((s for s in scores if s.score <= (1 + PARSIMONY) * best.score),
                key=lambda s: (s.spec.functions_per_element, s.spec.cutoff))
    if cheap is best:
        return best.spec, (f"best cross-validated score of {len(scores)} candidates "
                           f"({best.force_rmse:.4f} eV/Å, {best.energy_rmse:.2f} meV/atom)")
    return cheap.spec, (f"smallest within {100 * PARSIMONY:g}% of the best cross-validated score "
                        f"({describe(best.spec)}: {best.force_rmse:.4f} eV/Å, "
                        f"{best.energy_rmse:.2f} meV/atom; this one {cheap.force_rmse:.4f} eV/Å, "
                        f"{cheap.energy_rmse:.2f} meV/atom)")


def gamma_basis(choice: BasisChoice, elements: list[str]):
    """The BBasisConfiguration whose active set gives γ (the chosen cutoff and radial basis at
    the size of ``gamma_limit``, coefficients zero) when that size is not the chosen one, else
    None: γ keeps the size rule the loop's thresholds were set with, whatever size the fit
    chose (larger, or smaller on little data)."""
    if choice.gamma_functions is None:
        return None
    return basis_config(choice.chosen.model_copy(
        update={"functions_per_element": choice.gamma_functions}), elements)


def describe(spec: BasisSpec) -> str:
    """``"5.12 Å SBessel, 400 functions/element"``."""
    return f"{spec.cutoff:g} Å {spec.radial_basis}, {spec.functions_per_element} functions/element"


def scored(scores: list[BasisScore]) -> list[BasisScore]:
    """``scores`` with their score: the energy and force errors each relative to the lowest
    among the candidates, summed, and divided by the best sum (1 = the best). Scale-free, so
    neither quantity drowns the other whatever the targets: 10% worse energies are paid for by
    10% better forces."""
    e_best = max(min(s.energy_rmse for s in scores), 1e-12)
    f_best = max(min(s.force_rmse for s in scores), 1e-12)
    sums = [s.energy_rmse / e_best + s.force_rmse / f_best for s in scores]
    return [s.model_copy(update={"score": total / min(sums)}) for s, total in zip(scores, sums, strict=True)]


def choose_basis(df: pd.DataFrame, structures: list[Atoms], elements: list[str],
                 settings: TrainerConfig, weights: np.ndarray, targets: TargetsConfig,
                 ) -> tuple[BasisChoice, DesignRows, np.ndarray]:
    """The basis to fit ``structures`` (``df``: their delta DataFrame; ``weights``: the energy and
    force rows' loss weights) with, the design rows of its cutoff and radial basis at the
    largest size tried, and the chosen basis's columns among them. Candidates are scored
    (``scored``) by their cross-validated energy and force errors on ``targets.classes``
    (every structure when none is of those classes)."""
    start = time.perf_counter()
    gamma_size, gamma_reason = gamma_limit(structures, elements)
    limit, limit_reason = size_limit(structures, elements, settings.max_functions_per_element)
    if limit < gamma_size:
        gamma_size, gamma_reason = limit, limit_reason
    specs = candidate_specs(settings, elements, limit)
    if settings.functions_per_element != "auto":  # a fixed size keeps γ on its own basis
        limit, limit_reason = settings.functions_per_element, "trainer.functions_per_element"
        gamma_size = min(gamma_size, limit)
    targeted = np.array([a.info.get("generator") in targets.classes for a in structures])
    targeted = targeted if targeted.any() else np.ones(len(structures), bool)
    groups: dict[tuple[float, str], list[BasisSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.cutoff, spec.radial_basis), []).append(spec)
    scores, kept = [], {}
    for (cutoff, radial), group in groups.items():
        largest = max(group, key=lambda s: s.functions_per_element)
        rows = design_rows(largest, elements, df, weights, settings.workers)
        index = group_columns(largest, elements)
        columns = {s: columns_in(index, s, elements) for s in group}
        if len(specs) > 1:
            scores += cross_validated(rows, group, columns, settings.ridge_alpha, targeted)
        kept[(cutoff, radial)] = (rows, columns)
        log.info("basis: design rows at %g Å %s, %d functions/element (%.0f s so far)", cutoff,
                 radial, largest.functions_per_element, time.perf_counter() - start)
    scores = scored(scores) if scores else []
    chosen, reason = choose(scores) if scores else (specs[0], "every basis setting is fixed")
    rows, columns = kept[(chosen.cutoff, chosen.radial_basis)]
    choice = BasisChoice(chosen=chosen, scores=scores,
                         max_functions=limit, limit=limit_reason, reason=reason,
                         gamma_functions=gamma_size if gamma_size != chosen.functions_per_element
                         else None, gamma_limit=gamma_reason, seconds=time.perf_counter() - start)
    log.info("basis: %s (%s; size limit %d: %s; γ from %d functions: %s)", describe(chosen), reason,
             limit, limit_reason, gamma_size, gamma_reason)
    return choice, rows, columns[chosen]

