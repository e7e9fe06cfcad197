"""Held-out errors of a potential: overall and per generator, with the data of parity plots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.units import GPa
from pydantic import BaseModel, Field

from pyacemaker.records import Errors, Grade


class HeldOutMetrics(BaseModel):
    """Errors on the held-out structures, and per-structure values for the plots. Structures
    whose reference forces exceed the fit's force limit are scored apart: the fit never saw
    their like."""

    overall: Errors = Field(description="every structure within the force limit")
    by_generator: dict[str, Errors] = Field(description="per structure class, within the limit")
    target_classes: list[str] = Field(default_factory=list, description="the bulk classes "
                                      "pooled into ``targeted`` (those with enough structures)")
    targeted: Errors | None = Field(None, description="the target classes together; None when "
                                    "no held-out structure is of those classes")
    grade: Grade | None = Field(None, description="every class against its own targets; set "
                                "when the targets are known")
    beyond_force_limit: Errors | None = Field(None, description="structures with a reference "
                                              "force component above the fit's limit")
    generator: list[str] = Field(description="per structure")
    energy_reference: list[float] = Field(description="eV/atom, per structure")
    energy_predicted: list[float] = Field(description="eV/atom, per structure")
    max_gamma: list[float] = Field(description="largest per-atom extrapolation grade, per structure")
    force_reference: list[float] = Field(description="eV/Angstrom, every component")
    force_predicted: list[float] = Field(description="eV/Angstrom, every component")


def held_out_metrics(structures: list[Atoms], calc: Calculator, target_classes: Sequence[str] = (),
                     max_force: float | None = None, min_held_out: int = 1) -> HeldOutMetrics | None:
    """Errors of ``calc`` on labelled ``structures`` (single-point results attached), or
    ``None`` when none is within ``max_force`` (eV/Angstrom, largest reference force component;
    the others are scored apart). ``targeted`` covers the ``target_classes`` with at least
    ``min_held_out`` structures. ``calc`` may report per-atom ``gamma`` in its results."""
    limit = np.inf if max_force is None else max_force
    within = within_force_limit(structures, limit)
    beyond = [a for a in structures if np.abs(a.get_forces()).max() > limit]
    rows = [_evaluate(atoms, calc) for atoms in within]
    if not rows:
        return None
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["generator"]].append(row)
    pooled = [name for name in target_classes if len(groups.get(name, ())) >= min_held_out]
    targeted = [r for r in rows if r["generator"] in pooled]
    return HeldOutMetrics(
        overall=_errors(rows),
        by_generator={name: _errors(group) for name, group in sorted(groups.items())},
        target_classes=pooled, targeted=_errors(targeted) if targeted else None,
        beyond_force_limit=_errors([_evaluate(a, calc) for a in beyond]) if beyond else None,
        generator=[r["generator"] for r in rows],
        energy_reference=[r["e_ref"] for r in rows],
        energy_predicted=[r["e_pred"] for r in rows],
        max_gamma=[r["gamma"] for r in rows],
        force_reference=np.concatenate([r["f_ref"] for r in rows]).tolist(),
        force_predicted=np.concatenate([r["f_pred"] for r in rows]).tolist(),
    )


def within_force_limit(structures: list[Atoms], max_force: float) -> list[Atoms]:
    """The structures whose largest reference force component is at most ``max_force``
    (eV/Angstrom): what a fit is given, and what its held-out scores cover."""
    return [a for a in structures if np.abs(a.get_forces()).max() <= max_force]


def _evaluate(atoms: Atoms, calc: Calculator) -> dict:
    """Reference and predicted values of one structure (eV/atom, eV/Angstrom, GPa)."""
    n = len(atoms)
    e_ref, f_ref = atoms.get_potential_energy() / n, atoms.get_forces().ravel()
    try:
        s_ref = atoms.get_stress(voigt=True) / GPa
    except PropertyNotImplementedError:
        s_ref = None
    model = atoms.copy()
    model.calc = calc
    e_pred, f_pred = model.get_potential_energy() / n, model.get_forces().ravel()
    s_pred = model.get_stress(voigt=True) / GPa if s_ref is not None else None
    return {"generator": str(atoms.info.get("generator") or "unknown"), "e_ref": e_ref,
            "e_pred": e_pred, "f_ref": f_ref, "f_pred": f_pred, "s_ref": s_ref, "s_pred": s_pred,
            "gamma": float(np.max(calc.results.get("gamma", [0.0])))}


def _errors(rows: list[dict]) -> Errors:
    de = 1000.0 * np.array([r["e_pred"] - r["e_ref"] for r in rows])
    df = np.concatenate([r["f_pred"] - r["f_ref"] for r in rows])
    stressed = [r["s_pred"] - r["s_ref"] for r in rows if r["s_ref"] is not None]
    ds = np.concatenate(stressed) if stressed else None
    return Errors(
        n_structures=len(rows), energy_rmse=_rmse(de), energy_mae=float(np.mean(np.abs(de))),
        force_rmse=_rmse(df), force_mae=float(np.mean(np.abs(df))),
        stress_rmse=None if ds is None else _rmse(ds),
        stress_mae=None if ds is None else float(np.mean(np.abs(ds))),
    )


def _rmse(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2)))
