"""The basis chosen by measurement: column slices equal the smaller basis's own rows, the size
grows with the data within what the extrapolation grade carries, and the choice is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from pyacemaker.config import TargetsConfig, TrainerConfig, default_zbl_range
from pyacemaker.records import BasisSpec
from pyacemaker.training.baseline import ZBLCalculator
from pyacemaker.training.basis import (
    ATOMS_PER_FUNCTION,
    GAMMA_MAX_FUNCTIONS,
    ROWS_PER_FUNCTION,
    candidate_specs,
    choose_basis,
    columns_in,
    design_rows,
    gamma_limit,
    group_columns,
    size_limit,
)
from pyacemaker.training.linear import delta_dataframe, fit_linear_ace, sample_weights

INNER, OUTER = default_zbl_range(["Cu"])


def _inputs(structures):
    df, _ = delta_dataframe(structures, ZBLCalculator(["Cu"], INNER, OUTER))
    return df, sample_weights(structures, 0.05)


def test_a_smaller_basis_is_a_column_slice_of_a_larger_one(copper_data):
    train, _ = copper_data
    df, weights = _inputs(train[:6])
    small, large = (BasisSpec(cutoff=5.0, radial_basis="ChebExpCos", functions_per_element=n)
                    for n in (10, 40))
    columns = columns_in(group_columns(large, ["Cu"]), small, ["Cu"])
    assert len(columns) == 10 and len(set(columns.tolist())) == 10 and columns.max() < 40
    big_rows = design_rows(large, ["Cu"], df, weights, 1)
    small_rows = design_rows(small, ["Cu"], df.copy(), weights, 1)
    np.testing.assert_allclose(big_rows.matrix[:, columns], small_rows.matrix, rtol=1e-10, atol=1e-12)


def test_the_limits_grow_with_the_data(copper_data):
    train, _ = copper_data
    few, many = size_limit(train[:10], ["Cu"], 10_000), size_limit(train, ["Cu"], 10_000)
    rows = sum(3 * len(a) + 1 for a in train)
    assert few[0] < many[0] == rows // ROWS_PER_FUNCTION and "fit rows" in many[1]
    assert size_limit(train, ["Cu"], 30) == (30, "trainer.max_functions_per_element")
    atoms = sum(len(a) for a in train)
    assert gamma_limit(train[:10], ["Cu"])[0] < gamma_limit(train[:30], ["Cu"])[0] == (
        sum(len(a) for a in train[:30]) // ATOMS_PER_FUNCTION)
    assert gamma_limit(train, ["Cu"])[0] == min(atoms // ATOMS_PER_FUNCTION, GAMMA_MAX_FUNCTIONS)


def test_candidates_cover_only_what_the_config_leaves_open():
    auto = candidate_specs(TrainerConfig(), ["Cu"], 120)
    assert {s.radial_basis for s in auto} == {"SBessel", "ChebExpCos"}
    assert len({s.cutoff for s in auto}) == 2 and max(s.functions_per_element for s in auto) == 120
    fixed = candidate_specs(TrainerConfig(cutoff=5.0, radial_basis="SBessel",
                                          functions_per_element=16), ["Cu"], 120)
    assert fixed == [BasisSpec(cutoff=5.0, radial_basis="SBessel", functions_per_element=16)]


def test_the_chosen_basis_grows_with_the_data_and_gamma_never_exceeds_its_limit(copper_data):
    train, _ = copper_data
    settings = TrainerConfig(cutoff=5.0, radial_basis="SBessel", zbl_inner=INNER, zbl_outer=OUTER)
    chosen = {}
    for n in (8, 60):
        df, weights = _inputs(train[:n])
        choice, rows, columns = choose_basis(df, train[:n], ["Cu"], settings, weights, TargetsConfig())
        assert choice.chosen.functions_per_element <= choice.max_functions == size_limit(
            train[:n], ["Cu"], settings.max_functions_per_element)[0]
        gamma_size = gamma_limit(train[:n], ["Cu"])[0]
        assert (choice.gamma_functions or choice.chosen.functions_per_element) <= gamma_size
        # a size is a request: one element with these orders has 754 functions in all
        assert len(columns) <= choice.chosen.functions_per_element and rows.matrix.shape[1] >= len(columns)
        assert min(s.score for s in choice.scores) == pytest.approx(1.0)
        chosen[n] = choice.chosen.functions_per_element
    assert chosen[60] > chosen[8]


def test_fit_records_its_basis_choice_and_scores_better_than_the_smallest(copper_data, tmp_path):
    train, test = copper_data
    settings = TrainerConfig(zbl_inner=INNER, zbl_outer=OUTER, max_functions_per_element=100)
    potential, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "potential")
    choice = result.basis
    assert potential.cutoff == result.cutoff == choice.chosen.cutoff
    assert potential.radial_basis == choice.chosen.radial_basis
    assert result.functions_per_element == choice.chosen.functions_per_element
    smallest = min(choice.scores, key=lambda s: s.spec.functions_per_element)
    best = next(s for s in choice.scores if s.spec == choice.chosen)
    assert best.force_rmse < smallest.force_rmse and choice.reason


def test_the_report_says_which_basis_was_chosen_and_why(copper_data, tmp_path):
    from pyacemaker.records import FitResult
    from pyacemaker.state import IterationRecord
    from pyacemaker.validation.report import render
    from pyacemaker.validation.validate import ValidationResult

    train, test = copper_data
    settings = TrainerConfig(cutoff=5.0, zbl_inner=INNER, zbl_outer=OUTER, max_functions_per_element=40)
    _, fit = fit_linear_ace(train[:20], test, ["Cu"], settings, tmp_path / "potential")
    assert isinstance(fit, FitResult) and fit.basis.scores
    record = IterationRecord(iteration=0, labels_total=20, selected=20, fit=fit)
    result = ValidationResult(potential="p", created="now", seconds=1.0, passed=True, checks=[],
                              history=[record.model_dump(mode="json")])
    html = render(result)
    chosen = fit.basis.chosen
    assert "The basis, chosen by measurement" in html and fit.basis.reason in html
    assert f"{chosen.functions_per_element} @ 5 Å" in html and 'class="chosen"' in html


def test_fits_before_the_final_one_keep_the_nominal_or_previous_cutoff():
    from pyacemaker.training.trainer import interim_basis

    settings = TrainerConfig()
    first = interim_basis(settings, ["O", "Ti"], None)
    assert first.cutoff == 6.4 and first.radial_basis == "SBessel" and first.functions_per_element == "auto"
    previous = type("Previous", (), {"cutoff": 5.12, "radial_basis": "ChebExpCos"})()
    later = interim_basis(settings, ["O", "Ti"], previous)
    assert later.cutoff == 5.12 and later.radial_basis == "ChebExpCos"
    fixed = interim_basis(TrainerConfig(cutoff=7.0, radial_basis="ChebPow"), ["O", "Ti"], previous)
    assert fixed.cutoff == 7.0 and fixed.radial_basis == "ChebPow"
