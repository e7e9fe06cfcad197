"""Grade one potential: held-out errors and physical tests on one structure, pass or fail.

Every test that cannot be completed (a relaxation that blows up, an E(V) without minimum) is a
failed check with its reason, never a crash: a broken potential must be reported, not hide
behind a traceback.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, Field
from rich.progress import Progress

from pyacemaker.config import TargetsConfig, ValidationConfig
from pyacemaker.errors import CalculationFailed
from pyacemaker.progress import progress_bar
from pyacemaker.training.potential import Potential
from pyacemaker.validation.elastic import ElasticResult, elastic_tensor
from pyacemaker.validation.eos import EosResult, energies_of, fit_birch_murnaghan, strained_cells
from pyacemaker.validation.metrics import HeldOutMetrics, held_out_metrics
from pyacemaker.validation.phonons import PhononResult, phonons
from pyacemaker.validation.relax import relaxed

RELAXED_FMAX = 0.01  # eV/Angstrom: a relaxation that leaves more has not found a minimum
ACOUSTIC_TOLERANCE_THZ = 0.5
T = TypeVar("T")


class Check(BaseModel):
    """One pass/fail line of the report; ``passed`` is None when the check could not apply."""

    name: str
    passed: bool | None
    value: str
    threshold: str
    detail: str = ""


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
    created: str = Field(description="ISO 8601, UTC")
    seconds: float
    passed: bool
    checks: list[Check]
    structure: StructureSummary | None = None
    metrics: HeldOutMetrics | None = None
    eos: EosResult | None = None
    eos_oracle: EosResult | None = None
    elastic: ElasticResult | None = None
    phonons: PhononResult | None = None
    history: list[dict[str, Any]] = Field(default_factory=list, description="the run's iterations")
    stop_reason: str | None = None


def validate(potential: Potential, structure: Atoms, settings: ValidationConfig,
             targets: TargetsConfig | None = None, held_out: list[Atoms] = (),
             oracle: Calculator | None = None, gamma_limit: float = 5.0,
             show_progress: bool = True) -> ValidationResult:
    """Grade ``potential`` on ``held_out`` labelled structures and on ``structure`` (equation
    of state, elastic tensor and Born stability, phonons). ``oracle`` (a cheap reference
    calculator) adds its own bulk modulus for comparison; ``gamma_limit`` is the largest
    extrapolation grade the relaxed structure may have."""
    start = time.perf_counter()
    calc = potential.calculator(with_gamma=True)
    checks: list[Check] = []
    out: dict[str, Any] = {}
    with progress_bar(show_progress, transient=True) as progress:
        out["metrics"] = held_out_metrics(list(held_out), calc)
        checks += _accuracy_checks(out["metrics"], targets)
        ground = _attempt(checks, "relaxation", lambda: relaxed(structure, calc, cell=True))
        if ground is not None:
            out["structure"] = _summary(structure, ground, calc)
            checks += _structure_checks(ground, out["structure"], gamma_limit)
            eos = _attempt(checks, "equation of state", lambda: _eos(ground, calc, oracle, settings))
            if eos is not None:
                out["eos"], out["eos_oracle"] = eos
                checks += _eos_checks(*eos, settings.bulk_modulus_tolerance)
            out["elastic"] = _attempt(checks, "Born stability", lambda: elastic_tensor(
                ground, calc, strains=_strains(settings.elastic_strain),
                progress=_task(progress, "elastic constants")))
            if out["elastic"] is not None:
                checks.append(_born_check(out["elastic"]))
            out["phonons"] = _attempt(checks, "phonons", lambda: phonons(
                ground, calc, min_width=settings.phonon_min_width,
                tolerance_thz=settings.phonon_tolerance_thz,
                acoustic_tolerance_thz=ACOUSTIC_TOLERANCE_THZ,
                progress=_task(progress, "phonons")))
            if out["phonons"] is not None:
                checks.append(_phonon_check(out["phonons"]))
    return ValidationResult(
        potential=str(potential.folder), created=datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"), seconds=time.perf_counter() - start,
        passed=all(c.passed is not False for c in checks), checks=checks, **out)


def _attempt(checks: list[Check], name: str, action: Callable[[], T]) -> T | None:
    """``action()``, or None with a failed check named ``name`` when it cannot be completed."""
    try:
        with np.errstate(all="ignore"):
            return action()
    except (CalculationFailed, ValueError, ArithmeticError, np.linalg.LinAlgError,
            RuntimeError) as err:
        checks.append(Check(name=name, passed=False, value="could not be completed",
                            threshold="-", detail=f"{type(err).__name__}: {err}"))
        return None


def _accuracy_checks(metrics: HeldOutMetrics | None, targets: TargetsConfig | None) -> list[Check]:
    if metrics is None or targets is None:
        return [Check(name="held-out accuracy", passed=None, value="no held-out data",
                      threshold="-", detail="validate a potential inside its run's workdir "
                      "to compare with the run's held-out structures")]
    e, f = metrics.overall.energy_rmse, metrics.overall.force_rmse
    n = f"{metrics.overall.n_structures} held-out structures"
    return [
        Check(name="held-out energy RMSE", passed=targets.energy_met(e), value=f"{e:.2f} meV/atom",
              threshold=f"≤ {targets.energy_rmse_mev_per_atom:g} meV/atom", detail=n),
        Check(name="held-out force RMSE", passed=targets.force_met(f), value=f"{f:.4f} eV/Å",
              threshold=f"≤ {targets.force_rmse_ev_per_angstrom:g} eV/Å", detail=n),
    ]


def _summary(structure: Atoms, ground: Atoms, calc: Calculator) -> StructureSummary:
    ground.calc = calc
    ground.get_potential_energy()
    return StructureSummary(
        formula=structure.get_chemical_formula(), origin=str(structure.info.get("origin", "")),
        n_atoms=len(ground), cell_parameters=ground.cell.cellpar().tolist(),
        volume_change=ground.get_volume() / structure.get_volume() - 1.0,
        max_gamma=float(np.max(calc.results["gamma"])))


def _structure_checks(ground: Atoms, summary: StructureSummary, gamma_limit: float) -> list[Check]:
    fmax = float(np.abs(ground.get_forces()).max())
    return [
        Check(name="relaxation", passed=fmax <= RELAXED_FMAX, value=f"{fmax:.2g} eV/Å left",
              threshold=f"≤ {RELAXED_FMAX} eV/Å",
              detail=f"cell and ions relaxed; volume {100 * summary.volume_change:+.1f}% "
                     "from the input"),
        Check(name="interpolation", passed=summary.max_gamma <= gamma_limit,
              value=f"max γ {summary.max_gamma:.3g}", threshold=f"≤ {gamma_limit:g}",
              detail="extrapolation grade of the relaxed structure; above the limit the potential "
                     "extrapolates on it"),
    ]


def _eos(ground: Atoms, calc: Calculator, oracle: Calculator | None,
         settings: ValidationConfig) -> tuple[EosResult, EosResult | None]:
    cells = strained_cells(ground, calc, settings.eos_max_strain)
    model = fit_birch_murnaghan(cells, energies_of(cells, calc))
    reference = None if oracle is None else fit_birch_murnaghan(cells, energies_of(cells, oracle))
    return model, reference


def _eos_checks(model: EosResult, oracle: EosResult | None, tolerance: float) -> list[Check]:
    checks = [Check(name="equation of state", passed=model.bracketed and model.b0_gpa > 0,
                    value=f"B0 {model.b0_gpa:.1f} GPa, V0 {model.v0:.3f} Å³/atom",
                    threshold="minimum inside the sampled volumes, B0 > 0",
                    detail=f"Birch-Murnaghan fit, B0' {model.b0_prime:.2f}")]
    if oracle is None:
        checks.append(Check(name="bulk modulus vs oracle", passed=None, value="not computed",
                            threshold=f"±{100 * tolerance:g}%",
                            detail="the oracle is not cheap enough to run here"))
    elif not oracle.bracketed:
        checks.append(Check(name="bulk modulus vs oracle", passed=None,
                            value=f"oracle V0 {oracle.v0:.3f} Å³/atom outside the sampled volumes",
                            threshold=f"±{100 * tolerance:g}%",
                            detail="the oracle has no minimum near the potential's; nothing to "
                                   "compare"))
    else:
        error = model.b0_gpa / oracle.b0_gpa - 1.0
        checks.append(Check(name="bulk modulus vs oracle", passed=abs(error) <= tolerance,
                            value=f"{100 * error:+.1f}% ({model.b0_gpa:.1f} vs {oracle.b0_gpa:.1f} GPa)",
                            threshold=f"±{100 * tolerance:g}%",
                            detail="same cells, ions relaxed with the potential"))
    return checks


def _born_check(elastic: ElasticResult) -> Check:
    failed = [name for name, ok in elastic.conditions.items() if not ok]
    return Check(name="Born stability", passed=elastic.born_stable,
                 value=f"smallest eigenvalue {min(elastic.eigenvalues_gpa):.1f} GPa",
                 threshold="all eigenvalues of C > 0",
                 detail=f"{elastic.crystal_system}; " + (
                     f"violated: {', '.join(failed)}" if failed else
                     "closed-form conditions satisfied" if elastic.conditions else
                     "no closed-form conditions for this lattice"))


def _phonon_check(result: PhononResult) -> Check:
    detail = "no imaginary modes" if result.stable else "imaginary at q = " + ", ".join(
        "(" + " ".join(f"{x:.2f}" for x in q) + f") {f:.2f} THz" for q, f in result.imaginary[:3])
    return Check(name="phonons", passed=result.stable,
                 value=f"lowest {result.min_frequency_thz:.2f} THz",
                 threshold=f"≥ −{result.tolerance_thz:g} THz", detail=detail)


def _strains(largest: float) -> tuple[float, ...]:
    return (-largest, -largest / 2, largest / 2, largest)


def _task(progress: Progress, name: str) -> Callable[[int, int], None]:
    """A callback ``(done, total)`` that drives one bar of ``progress``."""
    task = progress.add_task(name, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update
