"""Validate a potential in the context of its run: the run's held-out labels, targets,
history and (when cheap) its oracle, whose side of the comparison is computed once per test
structure and cached in ``<workdir>/validation/oracle_reference.json``. Used by the loop after
every fit and by ``pyacemaker validate``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, ValidationError

from pyacemaker.composition import parse_composition
from pyacemaker.config import Config, OracleConfig, ValidationConfig
from pyacemaker.dataset import Dataset
from pyacemaker.oracle.registry import find_engine
from pyacemaker.progress import progress_bar, task_callback
from pyacemaker.state import WorkflowState
from pyacemaker.structures import standardized
from pyacemaker.structures.seeds import read_structure_file, seed_structures
from pyacemaker.timing import engine_call
from pyacemaker.training.potential import Potential
from pyacemaker.validation.large_cell import large_cell_frames
from pyacemaker.validation.locality import locality_or_none
from pyacemaker.validation.reference import OracleReference, oracle_reference
from pyacemaker.validation.validate import ValidationResult, validate
from pyacemaker.workdir import RunPaths, write_file

REFERENCE_FORMAT = 3  # bump when OracleReference or its computation changes
# the validation settings the oracle's side depends on (tolerances only grade it)
REFERENCE_SETTINGS = {"eos_max_strain", "elastic_strain", "phonon_min_width", "phonon_displacement",
                      "phonon_tolerance_thz"}


class CachedReference(BaseModel):
    """``oracle_reference.json``: the oracle's side and the key it was computed for."""

    key: str
    reference: OracleReference


def cheap_oracle(settings: OracleConfig) -> Calculator | None:
    """A calculator of the run's oracle when it is cheap (a calculator engine), else None: DFT
    is too slow to label the validation cells as well.

    Raises
    ------
    ConfigError
        For an unknown engine, or a calculator that cannot be imported.
    """
    build = find_engine(settings.engine).calculator_factory(settings)
    return build() if build else None


def read_test_structure(path: Path, elements: list[str], field: str) -> Atoms:
    """The first structure in ``path``, checked like a seed file (ConfigError names ``field``)."""
    origin, atoms = read_structure_file(path, {e: 1 for e in elements}, field)[0]
    atoms.info["origin"] = origin
    return atoms


def run_structure(config: Config, workdir: Path) -> Atoms:
    """The structure a run validates on: ``validation.structure``, else its first seed in the
    primitive cell (built from the config when ``workdir`` holds no seeds yet)."""
    if config.validation.structure is not None:
        return read_test_structure(config.validation.structure, config.elements,
                                   "validation.structure")
    seeds = RunPaths(workdir).seeds
    if seeds.is_file():
        seed = ase.io.read(seeds, index=0, format="extxyz")
    else:  # no run yet (doctor): the first seed the run will build
        origin, seed = seed_structures(parse_composition(config.composition), config.seeds,
                                       config.exploration.random_seed)[0]
        seed.info["origin"] = origin
    primitive = standardized(seed, to_primitive=True) or seed
    primitive.info["origin"] = seed.info.get("origin", "seed")
    return primitive


def reference_key(structure: Atoms, oracle: OracleConfig, settings: ValidationConfig) -> str:
    """SHA-256 of the test structure, the oracle's settings (without ``workers``) and the
    validation settings the oracle's results depend on."""
    payload = {
        "format": REFERENCE_FORMAT,
        "structure": {"numbers": structure.numbers.tolist(), "pbc": structure.pbc.tolist(),
                      "cell": np.round(structure.cell.array, 8).tolist(),
                      "positions": np.round(structure.get_scaled_positions(wrap=False), 8).tolist()},
        "oracle": oracle.model_dump(mode="json", exclude={"workers"}),
        "validation": settings.model_dump(mode="json", include=REFERENCE_SETTINGS),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def run_reference(structure: Atoms, config: Config, workdir: Path,
                  show_progress: bool = True) -> OracleReference | None:
    """The oracle's side of the validation on ``structure``: read from
    ``<workdir>/validation/oracle_reference.json`` when its key matches, else computed with the
    run's oracle and stored there; None when the oracle is not cheap (DFT)."""
    path = RunPaths(workdir).reference
    key = reference_key(structure, config.oracle, config.validation)
    if path.is_file():
        try:
            cached = CachedReference.model_validate_json(path.read_text())
        except ValidationError:  # an older format: computed again below
            cached = None
        if cached is not None and cached.key == key:
            return cached.reference
    calc = cheap_oracle(config.oracle)
    if calc is None:
        return None
    with progress_bar(show_progress, transient=True) as progress, engine_call():  # timed whole
        reference = oracle_reference(structure, calc, config.validation,
                                     lambda name: task_callback(progress, name))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, CachedReference(key=key, reference=reference).model_dump_json())
    return reference


def validate_in_run(potential: Potential, config: Config, workdir: Path,
                    structure: Atoms | None = None, show_progress: bool = True) -> ValidationResult:
    """Validate ``potential`` with the run in ``workdir``: its held-out structures, targets,
    history and stop reason, and, when the oracle is cheap, the oracle's own results, its MD
    frames of a large cell (from the oracle's relaxed structure when there is one) and its
    locality probe (all cached)."""
    state = WorkflowState.load(workdir)
    held_out = Dataset(RunPaths(workdir).dataset, config.trainer.test_fraction).labelled("test")
    structure = structure if structure is not None else run_structure(config, workdir)
    reference = run_reference(structure, config, workdir, show_progress)
    reach = max(potential.cutoff, config.trainer.nominal_cutoff(config.elements))  # one cell for
    large_cell = large_cell_frames(  # every cutoff auto may choose
        reference.structure.atoms() if reference and reference.structure else structure,
        reach, config.validation, config.oracle, lambda: cheap_oracle(config.oracle),
        RunPaths(workdir).large_cell, config.exploration.md_timestep_fs, show_progress)
    with progress_bar(show_progress, transient=True) as progress:
        locality = locality_or_none(structure, config, workdir,
                                    task_callback(progress, "oracle's locality"))
    result = validate(potential, structure, config.validation, config.targets, held_out,
                      gamma_limit=config.exploration.gamma_collect, show_progress=show_progress,
                      reference=reference, oracle_name=config.oracle.engine,
                      max_force=config.trainer.max_force, composition=config.composition,
                      large_cell=large_cell)
    return result.model_copy(update={
        "history": [r.model_dump(mode="json") for r in sorted(state.history, key=lambda r: r.iteration)],
        "stop_reason": state.stop_reason, "locality": locality})


def find_run(potential_folder: Path) -> Path | None:
    """The workdir that holds ``potential_folder`` (``WORKDIR/potential`` or
    ``WORKDIR/iterations/iter_NNN/potential``), or None."""
    for parent in list(potential_folder.resolve().parents)[:3]:
        if RunPaths(parent).is_run():
            return parent
    return None
