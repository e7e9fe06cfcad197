"""Validate a potential in the context of its run: the run's held-out labels, targets,
history and (when cheap) its oracle. Used by the loop after every fit and by ``pyacemaker
validate``."""

from __future__ import annotations

from pathlib import Path

import ase.io
from ase import Atoms
from ase.calculators.calculator import Calculator

from pyacemaker.config import Config, OracleConfig
from pyacemaker.dataset import Dataset
from pyacemaker.state import WorkflowState
from pyacemaker.structures import standardized
from pyacemaker.structures.seeds import read_structure_file
from pyacemaker.training.potential import Potential
from pyacemaker.validation.validate import ValidationResult, validate

FILE_BASED_ORACLES = ("espresso", "vasp")  # too slow to label the validation cells as well


def cheap_oracle(settings: OracleConfig) -> Calculator | None:
    """A calculator of the run's oracle when it is cheap (emt, tblite, ase:...), else None."""
    if settings.engine in FILE_BASED_ORACLES:
        return None
    from pyacemaker.oracle.calculators import calculator_factory

    return calculator_factory(settings)()


def read_test_structure(path: Path, elements: list[str], field: str) -> Atoms:
    """The first structure in ``path``, checked like a seed file (ConfigError names ``field``)."""
    origin, atoms = read_structure_file(path, {e: 1 for e in elements}, field)[0]
    atoms.info["origin"] = origin
    return atoms


def run_structure(config: Config, workdir: Path) -> Atoms:
    """The structure a run validates on: ``validation.structure``, else its first seed in the
    primitive cell."""
    if config.validation.structure is not None:
        return read_test_structure(config.validation.structure, config.elements,
                                   "validation.structure")
    seed = ase.io.read(workdir / "seeds.extxyz", index=0, format="extxyz")
    primitive = standardized(seed, to_primitive=True) or seed
    primitive.info["origin"] = seed.info.get("origin", "seed")
    return primitive


def validate_in_run(potential: Potential, config: Config, workdir: Path,
                    structure: Atoms | None = None, show_progress: bool = True) -> ValidationResult:
    """Validate ``potential`` with the run in ``workdir``: its held-out structures, targets,
    history and stop reason, and its oracle's bulk modulus when the oracle is cheap."""
    state = WorkflowState.load(workdir)
    held_out = Dataset(workdir / "dataset.db", config.trainer.test_fraction).labelled("test")
    result = validate(potential, structure if structure is not None else run_structure(config, workdir),
                      config.validation, config.targets, held_out, cheap_oracle(config.oracle),
                      config.exploration.gamma_collect, show_progress)
    return result.model_copy(update={
        "history": [r.model_dump(mode="json") for r in sorted(state.history, key=lambda r: r.iteration)],
        "stop_reason": state.stop_reason})


def find_run(potential_folder: Path) -> Path | None:
    """The workdir that holds ``potential_folder`` (``WORKDIR/potential`` or
    ``WORKDIR/iterations/iter_NNN/potential``), or None."""
    for parent in list(potential_folder.resolve().parents)[:3]:
        if (parent / "config.resolved.yaml").is_file() and (parent / "dataset.db").is_file():
            return parent
    return None
