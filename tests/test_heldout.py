"""Held-out sets that can decide: a minimum of held-out structures per class, per-class targets,
one rule for the report, `status`, the trainer and the loop (real pyace potential fitted to EMT
copper)."""

from __future__ import annotations

import pytest
from ase.build import bulk
from rich.console import Console

from pyacemaker.config import Config, OracleConfig, TargetsConfig, ValidationConfig
from pyacemaker.dataset import Dataset
from pyacemaker.orchestrator import Workflow
from pyacemaker.records import Errors, FitResult
from pyacemaker.state import IterationRecord, WorkflowState
from pyacemaker.status import history_table
from pyacemaker.training.trainer import _meets
from pyacemaker.validation.report import write_report
from pyacemaker.validation.validate import validate


def errors(n: int, energy: float, force: float) -> Errors:
    return Errors(n_structures=n, energy_rmse=energy, energy_mae=energy, force_rmse=force,
                  force_mae=force)


def fit_with(by_class: dict[str, Errors]) -> FitResult:
    """A fit whose pooled held-out numbers are within every target: only the classes differ."""
    return FitResult(n_train=50, n_test=9, functions_per_element=50, seconds=1.0,
                     train_energy_rmse=0.1, train_force_rmse=0.01, test_energy_rmse=0.1,
                     test_force_rmse=0.01, test_by_class=by_class)


def classed(structures, names):
    """Copies of ``structures`` (single-point results kept) of the structure classes ``names``."""
    out = []
    for atoms, name in zip(structures, names, strict=True):
        copy = atoms.copy()
        copy.calc = atoms.calc
        copy.info["generator"] = name
        out.append(copy)
    return out


def test_a_class_below_min_held_out_does_not_decide():
    targets = TargetsConfig()
    assert targets.min_held_out == 5
    alone = targets.grade({"md": errors(4, 50.0, 1.0)})
    assert alone.passed is None and alone.deciding == [] and alone.too_few == {"md": 4}
    assert alone.too_few_text() == "too few to decide (n < 5): md 4"
    beside = targets.grade({"md": errors(4, 50.0, 1.0), "rattle": errors(5, 0.5, 0.01)})
    assert beside.passed is True and beside.deciding == ["rattle"]


def test_a_class_at_min_held_out_decides():
    grade = TargetsConfig().grade({"md": errors(5, 50.0, 0.01), "rattle": errors(9, 0.5, 0.01)})
    assert grade.passed is False and grade.met("energy") is False and grade.met("force") is True
    assert grade.worst("energy") == "md"
    assert TargetsConfig(min_held_out=6).grade({"md": errors(5, 50.0, 0.01)}).passed is None


def test_every_class_has_its_own_target():
    targets = TargetsConfig()  # 1 meV/atom and 0.05 eV/A for the bulk
    assert targets.class_targets("md") == (1.0, 0.05)
    assert targets.class_targets("vacancy") == (2.0, 0.1)
    assert targets.class_targets("surface") == (2.0, 0.1)
    assert targets.class_targets("interstitial") == (4.0, 0.2)
    assert targets.class_targets("random") == (1.0, 0.05)  # in no list: the bulk targets
    by_class = {"md": errors(9, 0.8, 0.04), "vacancy": errors(6, 1.5, 0.08)}
    assert targets.grade(by_class).passed is True  # the vacancies within their 2x
    assert TargetsConfig(class_factors={"vacancy": 1.0}).grade(by_class).passed is False
    assert TargetsConfig(classes=["md", "vacancy"]).grade(by_class).passed is False
    given = TargetsConfig(class_factors={"surface": 3.0}).class_factors
    assert given["surface"] == 3.0 and given["interstitial"] == 4.0  # the others kept


def test_the_trainer_uses_the_verdict_rule():
    """Pooled held-out numbers within the targets do not count while no class can decide."""
    targets = TargetsConfig()
    assert not _meets(fit_with({"md": errors(3, 0.1, 0.01)}), targets)
    assert _meets(fit_with({"md": errors(5, 0.1, 0.01), "surface": errors(2, 90.0, 1.0)}), targets)
    assert not _meets(fit_with({"md": errors(5, 0.1, 0.01), "vacancy": errors(5, 3.0, 0.01)}),
                      targets)


def test_status_shows_classes_too_few_to_decide():
    state = WorkflowState(history=[
        IterationRecord(iteration=0, fit=fit_with({"md": errors(3, 0.1, 0.01)})),
        IterationRecord(iteration=1, fit=fit_with({"md": errors(6, 0.1, 0.01),
                                                   "vacancy": errors(5, 9.0, 0.01),
                                                   "surface": errors(2, 0.1, 0.01)}))])
    console = Console(record=True, width=250)
    console.print(history_table(state, TargetsConfig()))
    text = console.export_text()
    assert "- +1 few" in text  # iteration 0: no class decides
    assert "1/2 +1 few" in text  # iteration 1: md met, vacancy missed, surface too few


@pytest.fixture(scope="module")
def graded(copper_fit, copper_data, tmp_path_factory):
    """(result, report html): the EMT-copper potential validated on its 20 held-out
    structures labelled as 16 md and 4 vacancy cells (too few to decide)."""
    potential, _, _ = copper_fit
    held_out = classed(copper_data[1], ["md"] * 16 + ["vacancy"] * 4)
    result = validate(potential, bulk("Cu", "fcc", a=3.6), ValidationConfig(), TargetsConfig(),
                      held_out, show_progress=False)
    return result, write_report(result, tmp_path_factory.mktemp("report")).read_text()


def test_a_thin_class_is_shown_but_does_not_decide(graded):
    result, html = graded
    checks = {c.name: c for c in result.checks}
    energy = checks["held-out energy RMSE"]
    assert energy.passed is True and "(md)" in energy.value
    assert "too few to decide (n < 5): vacancy 4" in energy.detail
    assert result.metrics.grade.deciding == ["md"]
    assert result.metrics.by_generator["vacancy"].n_structures == 4  # its numbers are shown
    assert result.metrics.target_classes == ["md"]  # the headline pools the deciding bulk
    assert result.metrics.targeted.n_structures == 16
    assert "too few to decide (n &lt; 5)" in html and "<td>met</td>" in html


def test_no_class_that_can_decide_makes_accuracy_not_applicable(copper_fit, copper_data):
    potential, _, _ = copper_fit
    held_out = classed(copper_data[1][:8], ["md", "rattle"] * 4)
    result = validate(potential, bulk("Cu", "fcc", a=3.6), ValidationConfig(), TargetsConfig(),
                      held_out, show_progress=False)
    accuracy = [c for c in result.checks if c.name.startswith("held-out")]
    assert [(c.name, c.passed) for c in accuracy] == [("held-out accuracy", None)]
    assert "md 4, rattle 4" in accuracy[0].detail and "min_held_out" in accuracy[0].detail


def test_thin_classes_are_topped_up_with_test_only_rows(tmp_path):
    """With a cheap oracle the loop offers the unselected candidates, highest γ first; the
    dataset adds test-only rows until each class holds targets.min_held_out held-out rows, and
    they stay outside the label budget."""
    config = Config(composition="Cu", workdir=tmp_path / "run", oracle=OracleConfig(engine="emt"))
    workflow = Workflow(config, show_progress=False, explorer=object())
    dataset = Dataset(tmp_path / "dataset.db", test_fraction=0.1)
    cells = [bulk("Cu", "fcc", a=3.5 + 0.01 * k, cubic=True) for k in range(20)]
    rows = [(cells[k], {"generator": "md", "gamma": float(k)}) for k in range(12)]
    rows += [(cells[k], {"generator": "vacancy", "gamma": 1.0}) for k in (12, 13)]
    rows += [(cells[14], {"generator": "surface", "gamma": 99.0, "force_weights": [1.0] * 4})]
    chosen = [0, 1]
    top_up, minimum = workflow.held_out_top_up(rows, chosen)
    assert minimum == 5 and [p["gamma"] for _, p in top_up][:3] == [99.0, 11.0, 10.0]
    added = dataset.add_pending([rows[k] for k in chosen], top_up, minimum)
    held_out, budget = dataset.held_out_counts(), dataset.budget_count()
    assert held_out["md"] == 5 and held_out["vacancy"] == 2 and held_out["surface"] == 0
    assert budget == 2 and dataset.count() == added and dataset.count(test_only=True) == added - 2
    assert dataset.count(split="test") == 7  # md and vacancy; the embedded slab cannot be a test


def test_an_expensive_oracle_adds_no_test_only_rows(tmp_path):
    config = Config(composition="Cu", workdir=tmp_path / "run",
                    oracle=OracleConfig(engine="espresso"))
    workflow = Workflow(config, show_progress=False, explorer=object())
    assert workflow.held_out_top_up([(bulk("Cu"), {"generator": "md", "gamma": 1.0})], []) == ([], 0)
