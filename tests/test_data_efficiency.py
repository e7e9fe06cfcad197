"""The data-efficiency benchmark in miniature (so it cannot rot), and its pieces that decide the
numbers: pool-based MaxVol batches and the labels-to-target interpolation."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyacemaker.records import BasisSpec
from tests.conftest import emt_copper

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "data_efficiency.py"


def benchmark():
    spec = importlib.util.spec_from_file_location("data_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_labels_to_reach_interpolates_on_log_scales():
    labels_to_reach = benchmark().labels_to_reach
    curve = [(10, 0.4), (20, 0.1), (40, 0.05)]
    assert labels_to_reach(curve, 0.2) == pytest.approx(10 * math.sqrt(2))
    assert labels_to_reach(curve, 0.5) == 10
    assert labels_to_reach(curve, 0.05) == 40
    assert labels_to_reach(curve, 0.01) is None
    assert labels_to_reach([(10, 0.4), (20, 0.05), (40, 0.3)], 0.1) < 20  # the first crossing


def test_maxvol_batches_are_nested_and_new():
    from pyace.activelearning import compute_B_projections

    module = benchmark()
    pool = emt_copper(12, seed=3)
    bconf = module.basis_config(BasisSpec(cutoff=5.0, radial_basis="SBessel", functions_per_element=12),
                                ["Cu"])
    projections, owners = compute_B_projections(bconf, pool, return_structure_ind_dict=True)
    chosen = module.maxvol_choice(projections, owners, [2, 5, 9], np.random.default_rng(0))
    assert [len(chosen[n]) for n in (2, 5, 9)] == [2, 5, 9]
    assert len(set(chosen[9])) == 9 and set(chosen[2]) <= set(chosen[5]) <= set(chosen[9])


@pytest.mark.slow
def test_tiny_benchmark_runs_every_way_and_writes_its_results(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--seeds", "1", "--loop-seeds", "1",
                          "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "labels to reach a force RMSE" in run.stdout
    results = json.loads((tmp_path / "results.json").read_text())["EMT Cu"]
    assert set(results["curves"]) == {"random", "maxvol", "loop"}
    assert all(results["floor"][w] > 0 for w in ("stratified", "pool", "md"))
    for way, runs in results["curves"].items():
        (curve,) = runs
        first, last = curve[0][1]["stratified"], curve[-1][1]["stratified"]
        assert last < first, f"{way}: more labels, no better fit"
    assert results["curves"]["loop"][0][-1][0] == 16  # the loop's whole label budget
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
