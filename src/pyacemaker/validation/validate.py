"""Grade one potential: held-out errors and physical tests on one structure, pass or fail.

With a cheap oracle, the potential's relaxed lattice, bulk modulus, elastic constants and
phonons are compared with the oracle's, each at its own equilibrium (``compare.py``; the
oracle's side comes from ``reference.py``). Every test that cannot be completed (a relaxation
that blows up, an E(V) without minimum) is a failed check with its reason, never a crash: a
broken potential must be reported, not hide behind a traceback.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from phonopy import Phonopy
from pydantic import BaseModel, Field

from pyacemaker.config import TargetsConfig, ValidationConfig
from pyacemaker.oracle.locality import LocalityProbe
from pyacemaker.oracle.registry import engine_names
from pyacemaker.progress import progress_bar, task_callback
from pyacemaker.records import Grade
from pyacemaker.training.metrics import HeldOutMetrics, held_out_metrics
from pyacemaker.training.potential import Potential
from pyacemaker.validation import compare
from pyacemaker.validation.check import Check
from pyacemaker.validation.compare import OracleComparison
from pyacemaker.validation.elastic import ElasticResult, elastic_strains, elastic_tensor
from pyacemaker.validation.eos import EosResult, equation_of_state
from pyacemaker.validation.large_cell import LargeCellResult, grade_large_cell
from pyacemaker.validation.phonons import PhononResult, force_constants, phonon_result, supercell_matrix
from pyacemaker.validation.reach import ReachLimited, reach_limited, reach_radius
from pyacemaker.validation.reference import (
    COMPUTATION_ERRORS,
    OracleReference,
    RelaxedStructure,
    Stages,
    oracle_reference,
)
from pyacemaker.validation.relax import relaxed

Deviation = compare.PhononDeviation
RELAXED_FMAX = 0.01  # eV/Angstrom: a relaxation that leaves more has not found a minimum
T = TypeVar("T")

__all__ = ["Check", "StructureSummary", "ValidationResult", "validate"]


class StructureSummary(BaseModel):
    formula: str
    origin: str
    n_atoms: int
    cell_parameters: list[float] = Field(description="a, b, c (Angstrom), alpha, beta, gamma (deg), relaxed")
    volume_change: float = Field(description="relaxed over input volume, minus 1")
    max_gamma: float = Field(description="largest per-atom extrapolation grade, relaxed structure")


class ValidationResult(BaseModel):
    """Everything the report shows; written as ``validation.json``."""

    potential: str
    composition: str | None = Field(None, description="the system as the user wrote it (the run's "
                                    "composition), else the test structure's reduced formula")
    created: str = Field(description="ISO 8601, UTC")
    seconds: float
    passed: bool
    checks: list[Check]
    structure: StructureSummary | None = None
    metrics: HeldOutMetrics | None = None
    large_cell: LargeCellResult | None = Field(
        None, description="errors on the oracle's MD frames of a cell wider than twice the cutoff")
    eos: EosResult | None = None
    eos_oracle: EosResult | None = Field(None, description="the oracle's, around its own minimum")
    elastic: ElasticResult | None = None
    phonons: PhononResult | None = None
    oracle: str | None = Field(None, description="the oracle's engine name, when known")
    oracle_reference: OracleReference | None = Field(
        None, description="the oracle's own relaxed structure, E(V), elastic tensor and phonons")
    comparison: OracleComparison | None = Field(
        None, description="potential against oracle: lattice, elastic constants, phonon deviation")
    history: list[dict[str, Any]] = Field(default_factory=list, description="the run's iterations")
    locality: LocalityProbe | None = Field(
        None, description="the oracle's locality probe (a diagnostic, never a check)")
    stop_reason: str | None = None


def validate(potential: Potential, structure: Atoms, settings: ValidationConfig,
             targets: TargetsConfig | None = None, held_out: list[Atoms] = (),
             oracle: Calculator | None = None, gamma_limit: float = 5.0,
             show_progress: bool = True, reference: OracleReference | None = None,
             max_force: float | None = None, oracle_name: str | None = None,
             composition: str | None = None,
             large_cell: Sequence[Atoms] | str | None = None) -> ValidationResult:
    """Grade ``potential`` on ``held_out`` labelled structures and on ``structure`` (relaxed
    lattice, equation of state, elastic tensor and Born stability, phonons).

    ``reference`` is the oracle's side of the comparison (:func:`oracle_reference`); when it is
    None and ``oracle`` (a cheap reference calculator) is given, it is computed here. Without
    either, the comparisons are n/a, with ``oracle_name`` (e.g. "espresso") in the reason.
    ``gamma_limit`` is the largest extrapolation grade the relaxed structure may have. The
    held-out errors are graded per class (``TargetsConfig.grade``); structures whose reference forces exceed
    ``max_force`` (eV/Angstrom, the fit's limit) are scored apart. ``composition`` names the
    system in the report (e.g. the run's "TiO2"); default: ``structure``'s reduced formula.
    ``large_cell`` holds the oracle's labelled MD frames of a large cell
    (``large_cell.large_cell_frames``), graded against the held-out targets, or why there are
    none (the large-cell checks are then n/a); None leaves the test out.
    """
    start = time.perf_counter()
    calc = potential.calculator(with_gamma=True)
    checks: list[Check] = []
    oracle_name = oracle_name or (type(oracle).__name__ if oracle is not None else None)
    out: dict[str, Any] = {"oracle": oracle_name,
                           "composition": composition or reduced_formula(structure)}
    with progress_bar(show_progress, transient=True) as progress:
        stages: Stages = lambda name: task_callback(progress, name)  # noqa: E731
        if reference is None and oracle is not None:
            reference = oracle_reference(structure, oracle, settings, stages)
        out["oracle_reference"] = reference
        out["eos_oracle"] = None if reference is None else reference.eos
        out["metrics"] = _graded(held_out_metrics(
            list(held_out), calc, targets.classes if targets else (), max_force,
            targets.min_held_out if targets else 1), targets)
        checks += _accuracy_checks(out["metrics"], targets)
        if large_cell is not None:
            out["large_cell"], found = grade_large_cell(large_cell, calc, potential.cutoff, targets)
            checks += found
        initial = structure
        if reference is not None and reference.structure is not None:
            initial = reference.structure.atoms()  # both relax in the same basin: the oracle's
            initial.info["origin"] = f"{structure.info.get('origin', 'structure')}, relaxed by the oracle"
        ground = _attempt(checks, "relaxation", lambda: relaxed(initial, calc, cell=True))
        if ground is not None:
            out["structure"] = _summary(initial, ground, calc)
            checks += _structure_checks(ground, out["structure"], gamma_limit)
            out |= _physical_tests(ground, calc, settings, reference, oracle_name, stages, checks,
                                   reach_radius(potential.cutoff))
    return ValidationResult(
        potential=str(potential.folder), created=datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"), seconds=time.perf_counter() - start,
        passed=all(c.passed is not False for c in checks), checks=checks, **out)


def _physical_tests(ground: Atoms, calc: Calculator, settings: ValidationConfig,
                    reference: OracleReference | None, oracle_name: str | None, stages: Stages,
                    checks: list[Check], reach: float | None = None) -> dict[str, Any]:
    """Lattice, E(V), elastic tensor and phonons of the potential at its relaxed ``ground``, each
    compared with ``reference`` when there is one; the phonons against the oracle restricted to
    ``reach`` (Angstrom) when given. Appends the checks to ``checks``."""
    comparison = OracleComparison()
    gap = _oracle_gap(reference, "relaxation", oracle_name)
    if gap:
        checks.append(compare.not_applicable("lattice vs oracle",
                                             compare.lattice_threshold(settings.lattice_tolerance), gap))
    else:
        comparison.lattice = compare.compare_lattice(RelaxedStructure.of(ground), reference.structure)
        checks.append(compare.lattice_check(comparison.lattice, settings.lattice_tolerance,
                                            reference.structure.max_force))

    eos = _attempt(checks, "equation of state", lambda: equation_of_state(
        ground, calc, settings.eos_max_strain, stages("equation of state")))
    if eos is not None:
        checks.append(_eos_check(eos))
        threshold = compare.bulk_modulus_threshold(settings.bulk_modulus_tolerance)
        gap = _oracle_gap(reference, "equation of state", oracle_name)
        checks.append(compare.not_applicable("bulk modulus vs oracle", threshold, gap) if gap else
                      compare.bulk_modulus_check(eos, reference.eos, settings.bulk_modulus_tolerance))

    elastic = _attempt(checks, "Born stability", lambda: elastic_tensor(
        ground, calc, strains=elastic_strains(settings.elastic_strain), progress=stages("elastic constants")))
    if elastic is not None:
        checks.append(_born_check(elastic))
        gap = _oracle_gap(reference, "elastic constants", oracle_name)
        if gap:
            checks.append(compare.not_applicable("elastic constants vs oracle",
                                                 compare.elastic_threshold(settings.elastic_tolerance), gap))
        else:
            comparison.elastic = compare.compare_elastic(elastic, reference.elastic)
            checks.append(compare.elastic_check(comparison.elastic, settings.elastic_tolerance))

    gap = _oracle_gap(reference, "phonons", oracle_name)
    local = None if gap else _reach_limited(reference, reach, checks)
    result, comparison.phonons, comparison.phonons_full = _phonon_tests(
        ground, calc, settings, None if gap else reference.phonons, local, gap, stages, checks)
    comparison.phonon_reach = local
    return {"eos": eos, "elastic": elastic, "phonons": result,
            "comparison": comparison if reference is not None else None}


def _reach_limited(reference: OracleReference, reach: float | None,
                   checks: list[Check]) -> ReachLimited | None:
    """The oracle's phonons restricted to ``reach`` (Angstrom), or None without a reach or the
    oracle's displacement forces (a failed restriction is a failed "phonons" check)."""
    if reach is None or reference.phonon_forces is None:
        return None
    return _attempt(checks, "phonons", lambda: reach_limited(
        reference.structure.atoms(), reference.phonons, reference.phonon_forces, reach))


def _phonon_tests(ground: Atoms, calc: Calculator, settings: ValidationConfig, oracle: PhononResult | None,
                  local: ReachLimited | None, gap: str, stages: Stages, checks: list[Check]
                  ) -> tuple[PhononResult | None, Deviation | None, Deviation | None]:
    """The potential's phonons (on the oracle's supercell and path when there is an oracle), their
    graded deviation (from the oracle restricted to the reach, ``local``, when given, else from the
    full ``oracle``) and, with ``local``, the deviation from the full oracle; appends the "phonons"
    check to ``checks``."""
    matrix = oracle.supercell_matrix if oracle else supercell_matrix(ground, settings.phonon_min_width)
    phonon = _attempt(checks, "phonons", lambda: force_constants(
        ground, calc, matrix, settings.phonon_displacement, stages("phonons")))
    if phonon is None:
        return None, None, None
    result = _attempt(checks, "phonons", lambda: _phonon_result(phonon, settings, oracle))
    if result is None:
        return None, None, None
    if oracle is None:
        checks.append(compare.own_phonon_check(result, gap))
        return result, None, None
    full = _attempt(checks, "phonons", lambda: compare.compare_phonons(phonon, result, oracle))
    if full is None or local is None:
        if full is not None:
            checks.append(compare.phonon_check(result, oracle, full, settings.phonon_rms_tolerance_thz))
        return result, full, None
    graded = _attempt(checks, "phonons", lambda: compare.compare_phonons(phonon, result, local.phonons))
    if graded is not None:
        checks.append(compare.reach_phonon_check(result, oracle, local, graded, full,
                                                 settings.phonon_rms_tolerance_thz))
    return result, graded, full


def _phonon_result(phonon: Phonopy, settings: ValidationConfig, oracle: PhononResult | None) -> PhononResult:
    """The potential's phonons on the oracle's band path when there is one."""
    path = (oracle.path, oracle.path_names) if oracle is not None and oracle.path else None
    return phonon_result(phonon, tolerance_thz=settings.phonon_tolerance_thz, path=path,
                         displacement=settings.phonon_displacement)


def _oracle_gap(reference: OracleReference | None, stage: str, oracle_name: str | None) -> str:
    """Why the oracle's ``stage`` is not there to compare with, or "" when it is."""
    if reference is None:
        if oracle_name is None:
            return f"no oracle to compare with; give a cheap one ({engine_names(cheap_only=True)})"
        return (f"the oracle ({oracle_name}) is not cheap enough to run the validation cells; "
                "compare against DFT by hand")
    for needed in ("relaxation", stage):
        if needed in reference.failures:
            return f"the oracle's {needed} could not be completed: {reference.failures[needed]}"
    return ""


def _attempt(checks: list[Check], name: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None with a failed check named ``name`` when it cannot be completed."""
    try:
        with np.errstate(all="ignore"):
            return action()
    except COMPUTATION_ERRORS as err:
        checks.append(Check(name=name, passed=False, value="could not be completed",
                            threshold="-", detail=f"{type(err).__name__}: {err}"))
        return None


def _graded(metrics: HeldOutMetrics | None, targets: TargetsConfig | None) -> HeldOutMetrics | None:
    """``metrics`` with every class graded against its own targets."""
    if metrics is None or targets is None:
        return metrics
    return metrics.model_copy(update={"grade": targets.grade(metrics.by_generator)})


def _accuracy_checks(metrics: HeldOutMetrics | None, targets: TargetsConfig | None) -> list[Check]:
    """Held-out energy and force RMSE: every class with ``targets.min_held_out`` held-out
    structures within its own targets; each check shows the class furthest from its target."""
    if metrics is None or targets is None:
        return [Check(name="held-out accuracy", passed=None, value="no held-out data",
                      threshold="-", detail="validate a potential inside its run's workdir "
                      "to compare with the run's held-out structures")]
    grade = metrics.grade or targets.grade(metrics.by_generator)
    if not grade.deciding:
        return [Check(name="held-out accuracy", passed=None, value="too few held-out structures",
                      threshold=f"≥ {grade.min_held_out} per class",
                      detail=f"no class can decide: {grade.too_few_text()}; label more "
                      "(budget.max_labels) or lower targets.min_held_out")]
    few = grade.too_few_text()
    detail = (f"the worst of {len(grade.deciding)} classes that decide "
              f"({', '.join(grade.deciding)}), each against its own target"
              + (f"; {few}" if few else "") + "; every class is in the table below")
    return [_class_check(grade, "energy", "meV/atom", "{:.2f}", detail),
            _class_check(grade, "force", "eV/Å", "{:.4f}", detail)]


def _class_check(grade: Grade, quantity: str, unit: str, pattern: str, detail: str) -> Check:
    """The check of ``quantity`` (energy or force): the deciding class furthest from its
    target stands for all of them."""
    name = grade.worst(quantity)
    worst = grade.classes[name]
    value, target = getattr(worst, f"{quantity}_rmse"), getattr(worst, f"{quantity}_target")
    return Check(name=f"held-out {quantity} RMSE", passed=grade.met(quantity),
                 value=f"{pattern.format(value)} {unit} ({name})",
                 threshold=f"≤ {target:g} {unit} ({name}'s target)", detail=detail)


def _summary(structure: Atoms, ground: Atoms, calc: Calculator) -> StructureSummary:
    ground.calc = calc
    ground.get_potential_energy()
    return StructureSummary(
        formula=cell_formula(structure), origin=str(structure.info.get("origin", "")),
        n_atoms=len(ground), cell_parameters=ground.cell.cellpar().tolist(),
        volume_change=ground.get_volume() / structure.get_volume() - 1.0,
        max_gamma=float(np.max(calc.results["gamma"])))


def reduced_formula(atoms: Atoms) -> str:
    """The formula unit, metals first as chemists write it: ``TiO2`` for a rutile cell."""
    return atoms.get_chemical_formula(mode="metal", empirical=True)


def cell_formula(atoms: Atoms) -> str:
    """The cell's content, metals first: ``Ti2O4`` for a rutile cell (ASE's default: O4Ti2)."""
    return atoms.get_chemical_formula(mode="metal")


def _structure_checks(ground: Atoms, summary: StructureSummary, gamma_limit: float) -> list[Check]:
    fmax = float(np.abs(ground.get_forces()).max())
    return [
        Check(name="relaxation", passed=fmax <= RELAXED_FMAX, value=f"{fmax:.2g} eV/Å left",
              threshold=f"≤ {RELAXED_FMAX} eV/Å",
              detail=f"cell and ions relaxed; volume {100 * summary.volume_change:+.1f}% "
                     f"from the start ({summary.origin})"),
        Check(name="interpolation", passed=summary.max_gamma <= gamma_limit,
              value=f"max γ {summary.max_gamma:.3g}", threshold=f"≤ {gamma_limit:g}",
              detail="extrapolation grade of the relaxed structure; above the limit the potential "
                     "extrapolates on it"),
    ]




def _eos_check(model: EosResult) -> Check:
    return Check(name="equation of state", passed=model.bracketed and model.b0_gpa > 0,
                 value=f"B0 {model.b0_gpa:.1f} GPa, V0 {model.v0:.3f} Å³/atom",
                 threshold="minimum inside the sampled volumes, B0 > 0",
                 detail=f"Birch-Murnaghan fit, B0' {model.b0_prime:.2f}")


def _born_check(elastic: ElasticResult) -> Check:
    failed = [name for name, ok in elastic.conditions.items() if not ok]
    return Check(name="Born stability", passed=elastic.born_stable,
                 value=f"smallest eigenvalue {min(elastic.eigenvalues_gpa):.1f} GPa",
                 threshold="all eigenvalues of C > 0",
                 detail=f"{elastic.crystal_system}; " + (
                     f"violated: {', '.join(failed)}" if failed else
                     "closed-form conditions satisfied" if elastic.conditions else
                     "no closed-form conditions for this lattice"))
