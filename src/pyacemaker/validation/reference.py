"""The oracle's side of the validation: its own relaxed structure, equation of state, elastic
tensor and phonons, computed with the same settings as the potential's.

A pure function of the test structure, a (cheap) oracle calculator and the validation settings,
so it can be dispatched and cached; a stage the oracle cannot complete is recorded with its
reason, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, Field

from pyacemaker.config import ValidationConfig
from pyacemaker.errors import CalculationFailed
from pyacemaker.validation.elastic import ElasticResult, elastic_strains, elastic_tensor
from pyacemaker.validation.eos import EosResult, equation_of_state
from pyacemaker.validation.phonons import PhononResult, force_constants, phonon_result, supercell_matrix
from pyacemaker.validation.reach import DisplacementForces
from pyacemaker.validation.relax import relaxed

# what a calculation that cannot be completed raises; anything else is a bug and propagates
COMPUTATION_ERRORS = (CalculationFailed, ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)
T = TypeVar("T")
Stages = Callable[[str], Callable[[int, int], None]]


class RelaxedStructure(BaseModel):
    """A structure relaxed in cell and ions, summarised."""

    cell_parameters: list[float] = Field(description="a, b, c (Angstrom), alpha, beta, gamma (deg)")
    volume_per_atom: float = Field(description="Angstrom^3/atom")
    energy_per_atom: float = Field(description="eV/atom")
    max_force: float = Field(description="largest residual atomic force, eV/Angstrom")
    cell: list[list[float]] = Field(description="cell vectors, Angstrom, shape (3, 3)")
    scaled_positions: list[list[float]] = Field(description="fractional positions, (n_atoms, 3)")
    numbers: list[int] = Field(description="atomic numbers, (n_atoms,)")

    @classmethod
    def of(cls, atoms: Atoms) -> RelaxedStructure:
        """Summary of ``atoms``, which carries the calculator it was relaxed with."""
        return cls(cell_parameters=atoms.cell.cellpar().tolist(),
                   volume_per_atom=atoms.get_volume() / len(atoms),
                   energy_per_atom=float(atoms.get_potential_energy()) / len(atoms),
                   max_force=float(np.linalg.norm(atoms.get_forces(), axis=1).max(initial=0.0)),
                   cell=atoms.cell.array.tolist(), scaled_positions=atoms.get_scaled_positions().tolist(),
                   numbers=atoms.numbers.tolist())

    def atoms(self) -> Atoms:
        """The relaxed structure itself (no calculator)."""
        return Atoms(numbers=self.numbers, cell=self.cell, scaled_positions=self.scaled_positions,
                     pbc=True)


class OracleReference(BaseModel):
    """The oracle's own results on the test structure, each at the oracle's equilibrium."""

    structure: RelaxedStructure | None = Field(None, description="the oracle's relaxed structure")
    eos: EosResult | None = Field(None, description="Birch-Murnaghan fit around the oracle's minimum")
    elastic: ElasticResult | None = Field(None, description="elastic tensor at the oracle's minimum")
    phonons: PhononResult | None = Field(None, description="phonons at the oracle's minimum")
    phonon_forces: DisplacementForces | None = Field(
        None, description="the oracle's displaced supercells and forces behind ``phonons``: its force "
                          "constants, e.g. restricted to a potential's reach, without new force calls")
    failures: dict[str, str] = Field(default_factory=dict, description="stage (relaxation, equation "
                                     "of state, elastic constants, phonons) -> why it failed")
    seconds: float = Field(0.0, description="wall time of the oracle's calculations, s")


def oracle_reference(structure: Atoms, oracle: Calculator, settings: ValidationConfig,
                     stages: Stages | None = None) -> OracleReference:
    """The oracle's relaxed structure (cell and ions), equation of state on cells strained around
    it (ions relaxed), elastic tensor and phonons (``settings.phonon_displacement``).

    ``structure`` is never modified. ``stages(name)`` returns a ``(done, total)`` progress
    callback for each stage ("oracle: relaxation", ...). Stages the oracle cannot complete are
    listed in ``failures``; later stages then have nothing to start from when the relaxation fails.
    """
    start = time.perf_counter()
    stages = stages or (lambda name: lambda done, total: None)
    failures: dict[str, str] = {}
    out: dict[str, object] = {}

    def attempt(stage: str, action: Callable[[Callable[[int, int], None]], T]) -> T | None:
        progress = stages(f"oracle: {stage}")
        try:
            with np.errstate(all="ignore"):
                return action(progress)
        except COMPUTATION_ERRORS as err:
            failures[stage] = f"{type(err).__name__}: {err}"
            return None

    ground = attempt("relaxation", lambda progress: _relaxed(structure, oracle, progress))
    if ground is not None:
        out["structure"] = RelaxedStructure.of(ground)
        out["eos"] = attempt("equation of state", lambda progress: equation_of_state(
            ground, oracle, settings.eos_max_strain, progress))
        out["elastic"] = attempt("elastic constants", lambda progress: elastic_tensor(
            ground, oracle, strains=elastic_strains(settings.elastic_strain), progress=progress))
        measured = attempt("phonons", lambda progress: _phonons(ground, oracle, settings, progress))
        if measured is not None:
            out["phonons"], out["phonon_forces"] = measured
    return OracleReference(failures=failures, seconds=time.perf_counter() - start, **out)


def _relaxed(structure: Atoms, calc: Calculator, progress: Callable[[int, int], None]) -> Atoms:
    ground = relaxed(structure, calc, cell=True)
    progress(1, 1)
    return ground


def _phonons(ground: Atoms, calc: Calculator, settings: ValidationConfig,
             progress: Callable[[int, int], None]) -> tuple[PhononResult, DisplacementForces]:
    """The oracle's phonons at its minimum and the displacement forces they come from."""
    phonon = force_constants(ground, calc, supercell_matrix(ground, settings.phonon_min_width),
                             settings.phonon_displacement, progress)
    result = phonon_result(phonon, tolerance_thz=settings.phonon_tolerance_thz,
                           displacement=settings.phonon_displacement)
    return result, DisplacementForces.of(phonon)
