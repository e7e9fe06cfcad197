"""Nonlinear ACE fit with pacemaker (TensorFlow backend) on reference minus ZBL baseline.

pacemaker runs as its own process (``pacemaker input.yaml``, argument list, timeout), in a work
folder inside the potential's staging folder: TensorFlow stays out of the loop's process and a
killed fit leaves nothing half-written. The data, targets and weights are the linear trainer's
(``delta_dataframe``): energies and forces minus ZBL and per-element reference energies, with the
per-structure energy and per-atom force weights of periodic embedding as pacemaker's
``w_energy`` / ``w_forces`` columns. After the fit the same code as the linear trainer writes
.yaml/.yace and the linear active set .asi.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml
from ase import Atoms

from pyacemaker.config import TrainerConfig
from pyacemaker.errors import CalculationFailed, EngineSetupError
from pyacemaker.records import BasisSpec
from pyacemaker.timing import engine_call
from pyacemaker.training.baseline import ZBLCalculator
from pyacemaker.training.linear import (
    FitResult,
    delta_dataframe,
    fit_inputs,
    fixed_spec,
    held_out_scores,
    load_fit,
    structure_weights,
    write_fit,
    write_potential_files,
)
from pyacemaker.training.metrics import held_out_metrics, within_force_limit
from pyacemaker.training.potential import Potential
from pyacemaker.workdir import staged_folder

log = logging.getLogger(__name__)

WORK = "pacemaker"
NONLINEAR_MAX_FUNCTIONS = 300  # a nonlinear fit's cost grows fast with the basis (README)
ITERATION = re.compile(r"Iteration:?\s+#(\d+)")


def tensorflow_available() -> bool:
    """pacemaker's TensorFlow backend (tensorflow + tensorpotential) is importable."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorpotential"))


def pacemaker_input(elements: list[str], settings: TrainerConfig, spec: BasisSpec,
                    initial: Potential | None, has_test: bool) -> dict:
    """pacemaker's input.yaml as data: a two-density Finnis-Sinclair ACE, BFGS on energies and
    forces (``settings.loss_kappa`` share of forces), of ``spec``'s cutoff, radial basis and size.
    With ``initial`` (a nonlinear potential), the fit continues from its coefficients: grown to
    ``spec``'s size when that is larger, else refitted as it is."""
    functions_per_element = spec.functions_per_element
    potential: dict | str = {
        "deltaSplineBins": 0.001,
        "elements": elements,
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": spec.radial_basis, "radparameters": [5.25], "rcut": spec.cutoff,
                          "dcut": 0.01, "NameOfCutoffFunction": "cos"}},
        "functions": {"number_of_functions_per_element": functions_per_element,
                      "ALL": {"nradmax_by_orders": [15, 6, 4, 3, 2],
                              "lmax_by_orders": [0, 4, 3, 2, 1]}},
    }
    if initial is not None and initial.functions_per_element >= functions_per_element:
        potential = str(initial.yaml)  # pacemaker refits a potential given as a file
    elif initial is not None:
        potential["initial_potential"] = str(initial.yaml)
    data = {"filename": "train.pckl.gzip"} | ({"test_filename": "test.pckl.gzip"} if has_test else {})
    return {  # no top-level cutoff: pacemaker takes it from the potential's bonds
        "seed": 42,
        "metadata": {"origin": "pyacemaker"},
        "potential": potential,
        "data": data,
        "fit": {"loss": {"kappa": settings.loss_kappa, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
                "optimizer": "BFGS", "maxiter": settings.nonlinear_iterations},
        "backend": {"evaluator": "tensorpot", "batch_size": 100, "display_step": 10},
    }


def weighted_frame(structures: list[Atoms], baseline: ZBLCalculator,
                   references: dict[str, float] | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """``delta_dataframe`` plus normalised ``w_energy`` (per structure) and ``w_forces`` (per
    atom) from ``info['energy_weight']`` and ``arrays['force_weight']`` (default 1)."""
    df, references = delta_dataframe(structures, baseline, references)
    energy, forces = structure_weights(structures)
    df["w_energy"] = energy / energy.sum()
    total = sum(f.sum() for f in forces)
    df["w_forces"] = [f / total for f in forces]
    return df, references


def run_pacemaker(folder: Path, timeout: float, on_iteration: Callable[[int], None] | None = None) -> Path:
    """Run ``pacemaker input.yaml`` in ``folder``; return the fitted potential's path.

    Raises
    ------
    EngineSetupError
        pacemaker or its TensorFlow backend is not installed.
    CalculationFailed
        The fit timed out, failed, or wrote no potential (the last lines of its log are quoted).
    """
    if not tensorflow_available():
        raise EngineSetupError("the nonlinear trainer needs TensorFlow: run `make nonlinear` (or "
                               "set trainer.kind: linear)")
    program = Path(sys.executable).with_name("pacemaker")
    command = [str(program), "input.yaml"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}
    deadline = time.monotonic() + timeout
    with open(folder / "pacemaker.out", "w") as out, subprocess.Popen(
            command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env) as process:
        for line in process.stdout:
            out.write(line)
            match = ITERATION.search(line)
            if match and on_iteration is not None:
                on_iteration(int(match.group(1)))
            if time.monotonic() > deadline:
                process.kill()
                raise CalculationFailed(f"pacemaker timed out after {timeout:.0f} s ({folder})")
    result = folder / "output_potential.yaml"
    if process.returncode != 0 or not result.is_file():
        tail = "".join((folder / "pacemaker.out").read_text().splitlines(keepends=True)[-8:])
        raise CalculationFailed(f"pacemaker failed (exit {process.returncode}) in {folder}:\n{tail}")
    return result


def model_errors(potential: Potential, structures: list[Atoms]) -> tuple[float, float]:
    """Energy (meV/atom) and force-component (eV/Angstrom) RMSE of ``potential``'s full model
    (ACE + ZBL + references) against the labels of ``structures``."""
    overall = held_out_metrics(structures, potential.calculator(with_gamma=False)).overall
    return overall.energy_rmse, overall.force_rmse


def fit_nonlinear_ace(train: list[Atoms], test: list[Atoms], elements: list[str],
                      settings: TrainerConfig, out_dir: Path, initial: Potential | None = None,
                      on_iteration: Callable[[int], None] | None = None,
                      classes: list[str] = ()) -> tuple[Potential, FitResult]:
    """Fit ``train`` with pacemaker, score on ``test``, write the potential to ``out_dir``
    (atomically, like the linear trainer; a failed fit's folder is kept beside it as
    ``<name>.failed-<timestamp>``). ``initial`` (a previous nonlinear potential)
    warm-starts the fit instead of starting from zero."""
    from pyace import ACEBBasisSet, BBasisConfiguration

    start = time.perf_counter()
    train, excluded, pruned = fit_inputs(train, elements, settings)
    spec = fixed_spec(train, elements, settings, NONLINEAR_MAX_FUNCTIONS)
    if initial is not None:  # a warm start keeps its cutoff and never shrinks
        spec = spec.model_copy(update={"cutoff": initial.cutoff, "radial_basis": initial.radial_basis,
                                       "functions_per_element": max(
            spec.functions_per_element, initial.functions_per_element)})
    n_funcs = spec.functions_per_element
    baseline = ZBLCalculator(elements, settings.zbl_inner, settings.zbl_outer)
    with staged_folder(out_dir) as staging:
        work = staging / WORK
        work.mkdir()
        train_df, references = weighted_frame(train, baseline)
        train_df.to_pickle(work / "train.pckl.gzip", compression="gzip")
        fitted_test = within_force_limit(test, settings.max_force)
        if fitted_test:
            weighted_frame(fitted_test, baseline, references)[0].to_pickle(
                work / "test.pckl.gzip", compression="gzip")
        (work / "input.yaml").write_text(yaml.safe_dump(
            pacemaker_input(elements, settings, spec, initial, bool(fitted_test)),
            sort_keys=False))
        log.info("pacemaker: %d functions per element, %d structures, up to %d iterations%s",
                 n_funcs, len(train), settings.nonlinear_iterations,
                 f", from {initial.yaml}" if initial else "")
        with engine_call():
            fitted = run_pacemaker(work, settings.timeout_s, on_iteration)

        potential = Potential(folder=staging, elements=elements, cutoff=spec.cutoff,
                              zbl_inner=settings.zbl_inner, zbl_outer=settings.zbl_outer,
                              reference_energies=references, functions_per_element=n_funcs,
                              radial_basis=spec.radial_basis, kind="nonlinear")
        write_potential_files(ACEBBasisSet(BBasisConfiguration(str(fitted))), potential, train)
        train_e, train_f = model_errors(potential, train)
        write_fit(staging, FitResult(
            n_train=len(train), n_test=len(test), n_excluded=excluded, n_pruned=pruned,
            functions_per_element=n_funcs, seconds=time.perf_counter() - start, cutoff=spec.cutoff,
            train_energy_rmse=train_e, train_force_rmse=train_f, kind="nonlinear",
            loss_kappa=settings.loss_kappa,
            **held_out_scores(potential, test, classes, settings.max_force)))
    return load_fit(out_dir)
