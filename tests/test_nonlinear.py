"""Nonlinear ACE with the real pacemaker (TensorFlow backend): a short fit of EMT CuAu whose
files LAMMPS loads and runs, warm starts, weights, and the trainer's choice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pyacemaker.config import TargetsConfig, TrainerConfig, default_zbl_range
from pyacemaker.dynamics.lammps_input import MDRequest
from pyacemaker.dynamics.md import LammpsEngine
from pyacemaker.errors import CalculationFailed
from pyacemaker.records import BasisSpec
from pyacemaker.training import nonlinear, trainer
from pyacemaker.training.nonlinear import fit_nonlinear_ace, run_pacemaker
from tests.conftest import emt_labelled
from tests.test_dynamics import ELEMENTS, alloy

ITERATIONS = 5  # a real fit, kept short: the test checks the pipeline, not the accuracy


def settings(**extra) -> TrainerConfig:
    """A tiny pacemaker fit, at kappa 0.3, the value these tests were written for: within so
    few BFGS iterations a warm start's training energy RMSE depends on it (at the default 0.05
    it rose from 8.1 to 13.4 meV/atom)."""
    inner, outer = default_zbl_range(ELEMENTS)
    return TrainerConfig(**{"cutoff": 5.0, "functions_per_element": 8, "zbl_inner": inner,
                            "zbl_outer": outer, "nonlinear_iterations": ITERATIONS,
                            "loss_kappa": 0.3, **extra})


@pytest.fixture(scope="module")
def data():
    train = [emt_labelled(alloy(seed)) for seed in range(12)]
    test = [emt_labelled(alloy(seed)) for seed in range(100, 103)]
    return train, test


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    train, test = data
    seen = []
    folder = tmp_path_factory.mktemp("nonlinear") / "potential"
    potential, result = fit_nonlinear_ace(train, test, ELEMENTS, settings(), folder,
                                          on_iteration=seen.append)
    return potential, result, seen


def test_short_fit_writes_a_nonlinear_potential(fitted):
    potential, result, seen = fitted
    for path in (potential.yaml, potential.yace, potential.asi, potential.folder / "fit.json"):
        assert path.stat().st_size > 0
    assert potential.kind == result.kind == "nonlinear"
    spec = yaml.safe_load(potential.yaml.read_text())
    densities = {b["ndensityi"] for b in spec["species"] if "ndensityi" in b}  # element blocks
    assert densities == {2}  # two densities: a nonlinear embedding
    assert result.n_train == 12 and result.n_test == 3
    assert np.isfinite([result.train_energy_rmse, result.test_energy_rmse]).all()
    assert seen and max(seen) <= ITERATIONS + 1  # progress came from pacemaker's own log
    assert not potential.folder.with_name("potential.partial").exists()


def test_lammps_runs_the_nonlinear_potential_like_pyace(fitted, tmp_path):
    potential, _, _ = fitted
    start = alloy(7, rattle=0.02)
    request = MDRequest(temperature_k=300.0, steps=40, timestep_fs=1.0, gamma_every=10,
                        gamma_collect=5.0, gamma_halt=1e6, seed=7)
    md = LammpsEngine().run(start, potential, request, tmp_path / "md")
    assert md.status == "completed", md.error
    model = start.copy()
    model.calc = potential.calculator(with_gamma=True)
    offset = sum(potential.reference_energies[s] for s in start.get_chemical_symbols())
    # LAMMPS leaves the per-element reference energies out; everything else must agree
    assert md.thermo[0]["PotEng"] == pytest.approx(model.get_potential_energy() - offset, abs=1e-6)
    assert md.thermo[0]["c_max_gamma"] == pytest.approx(model.calc.results["gamma"].max(), rel=1e-4)


def test_warm_start_grows_the_previous_potential(fitted, data, tmp_path):
    potential, first, _ = fitted
    train, test = data
    grown, second = fit_nonlinear_ace(train, test, ELEMENTS, settings(functions_per_element=12),
                                      tmp_path / "again", initial=potential)
    log = (tmp_path / "again" / "pacemaker" / "pacemaker.out").read_text()
    assert "Initial potential provided" in log and grown.functions_per_element == 12
    # the new functions start at zero, so the fit starts where the previous one ended
    assert second.train_energy_rmse <= first.train_energy_rmse * 1.05


def test_warm_start_of_the_same_size_refits_the_file(fitted):
    potential, _, _ = fitted
    spec = BasisSpec(cutoff=potential.cutoff, radial_basis="SBessel", functions_per_element=8)
    inputs = nonlinear.pacemaker_input(ELEMENTS, settings(), spec, potential, has_test=True)
    assert inputs["potential"] == str(potential.yaml)  # pacemaker continues from its coefficients
    fresh = nonlinear.pacemaker_input(ELEMENTS, settings(), spec, None, True)
    assert fresh["potential"]["elements"] == ELEMENTS


def test_embedding_weights_reach_pacemaker(data, tmp_path):
    train, _ = data
    weighted = [a.copy() for a in train[:3]]
    for a, src in zip(weighted, train[:3], strict=True):
        a.calc = src.calc
    weighted[0].info["energy_weight"] = 0.0
    weighted[0].arrays["force_weight"] = np.r_[np.ones(4), np.zeros(len(weighted[0]) - 4)]
    from pyacemaker.training.baseline import ZBLCalculator

    inner, outer = default_zbl_range(ELEMENTS)
    frame, _ = nonlinear.weighted_frame(weighted, ZBLCalculator(ELEMENTS, inner, outer))
    frame.to_pickle(tmp_path / "w.pckl.gzip", compression="gzip")
    back = pd.read_pickle(tmp_path / "w.pckl.gzip", compression="gzip")  # our own file
    assert back["w_energy"].tolist() == [0.0, 0.5, 0.5]
    assert np.count_nonzero(back["w_forces"][0]) == 4
    assert sum(w.sum() for w in back["w_forces"]) == pytest.approx(1.0)


def test_a_failing_pacemaker_run_names_its_log(tmp_path):
    (tmp_path / "input.yaml").write_text("potential: {elements: [Cu]}\ndata: {filename: none.pckl.gzip}\n")
    with pytest.raises(CalculationFailed, match="pacemaker failed"):
        run_pacemaker(tmp_path, timeout=300)


def test_auto_stays_linear_when_it_meets_the_targets_or_nonlinear_cannot_run(data, tmp_path,
                                                                            monkeypatch):
    train, test = data
    easy = TargetsConfig(energy_rmse_mev_per_atom=1e3, force_rmse_ev_per_angstrom=10.0)
    potential, result = trainer.fit(train, test, ELEMENTS, settings(kind="auto"), tmp_path / "a",
                                    easy, show_progress=False)
    assert result.kind == potential.kind == "linear" and not (tmp_path / "a" / "pacemaker").exists()
    assert "384 training atoms" in trainer.nonlinear_refused(train)  # too little data
    monkeypatch.setattr(trainer, "NONLINEAR_MIN_ATOMS", 100)
    assert trainer.nonlinear_refused(train) is None
    strict = TargetsConfig(energy_rmse_mev_per_atom=1e-6, force_rmse_ev_per_angstrom=1e-6)
    _, early = trainer.fit(train, test, ELEMENTS, settings(kind="auto"), tmp_path / "b", strict,
                           show_progress=False, final=False)  # not the run's last iteration
    assert early.kind == "linear" and not (tmp_path / "b.nonlinear").exists()
    monkeypatch.setattr(trainer, "tensorflow_available", lambda: False)
    assert "TensorFlow" in trainer.nonlinear_refused(train)


def test_auto_fits_both_when_linear_misses_and_keeps_the_better(data, tmp_path, monkeypatch,
                                                                caplog):
    train, test = data
    caplog.set_level("INFO", logger="pyacemaker")
    monkeypatch.setattr(trainer, "NONLINEAR_MIN_ATOMS", 100)
    strict = TargetsConfig(energy_rmse_mev_per_atom=1e-6, force_rmse_ev_per_angstrom=1e-6)
    out = tmp_path / "potential"
    potential, result = trainer.fit(train, test, ELEMENTS, settings(kind="auto"), out, strict,
                                    show_progress=False)
    kept = json.loads((out / "fit.json").read_text())
    assert kept["kind"] == result.kind == potential.kind and potential.folder == out
    assert (out / "pacemaker").exists() == (result.kind == "nonlinear")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["potential"]  # the loser is gone
    kept_error, other_error = map(float, re.search(
        r"keeping the \w+ fit \(held-out ([\d.]+) vs ([\d.]+)", caplog.text).groups())
    assert kept_error <= other_error and kept_error == pytest.approx(result.test_energy_rmse, abs=0.01)


def test_loop_with_the_nonlinear_trainer_warm_starts_each_fit(tmp_path):
    """The real loop (EMT Cu, LAMMPS MD) with trainer.kind nonlinear: every iteration is a
    pacemaker fit, the second one starting from the first."""
    from typer.testing import CliRunner

    from pyacemaker.cli import app
    from pyacemaker.state import WorkflowState

    data = {"composition": "Cu", "workdir": str(tmp_path / "run"), "oracle": {"engine": "emt"},
            "budget": {"max_iterations": 1, "max_labels": 40},
            "exploration": {"seed_labels": 12, "labels_per_iteration": 6, "md_steps": 20,
                            "md_temperatures": [600]},
            "trainer": {"kind": "nonlinear", "nonlinear_iterations": 3,
                        "functions_per_element": 8},
            "validation": {"every_iteration": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "config.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    state = WorkflowState.load(tmp_path / "run")
    assert [r.fit.kind for r in state.history] == ["nonlinear", "nonlinear"]
    second = tmp_path / "run" / "iterations" / "iter_001" / "potential" / "pacemaker" / "input.yaml"
    start = Path(yaml.safe_load(second.read_text())["potential"])
    # warm start from the first fit, which travelled to the fit task as its files
    assert start.name == "potential.yaml" and start.parent.name == "previous"
    assert "8 nl" in CliRunner().invoke(app, ["status", str(tmp_path / "run")]).output
