"""`pyacemaker run --max-labels N --max-iterations N`: a trial on a smaller budget, then the
config's own budget resumes it and goes on (the tutorial's way to start)."""

from __future__ import annotations

import pytest
import yaml
from ase.db import connect
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.resolve import load_config
from pyacemaker.state import WorkflowState

CONFIG = {
    "composition": "Cu",
    "oracle": {"engine": "emt"},
    "budget": {"max_iterations": 2, "max_labels": 60},
    "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
    "exploration": {"seed_labels": 16, "labels_per_iteration": 8, "md_steps": 30,
                    "md_temperatures": [700], "rare_events": {"when": "never"}},
    "trainer": {"kind": "linear"},
    "validation": {"every_iteration": False},
}


def run(config, *options: str) -> WorkflowState:
    result = CliRunner().invoke(app, ["run", str(config), "--no-progress", *options])
    assert result.exit_code == 0, result.output
    return WorkflowState.load(load_config(config).workdir)


def labels(workdir) -> dict[int, tuple[int, ...]]:
    """Budgeted row ids per iteration (EMT is cheap: thin classes also get test-only labels,
    outside the budget): a resumed run must not relabel or drop any."""
    out: dict[int, tuple[int, ...]] = {}
    for row in connect(str(workdir / "dataset.db")).select():
        if not row.get("test_only"):
            out[row.iteration] = (*out.get(row.iteration, ()), row.id)
    return out


def test_trial_budget_then_full_budget_goes_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "workdir": "run"}))
    workdir = tmp_path / "run"

    state = run(config, "--max-labels", "16")  # the seed labels only
    assert state.phase == "done" and state.stop_reason.startswith("label budget reached (16 ")
    assert [r.iteration for r in state.history] == [0]
    assert load_config(workdir / "config.resolved.yaml").budget.max_labels == 16
    seeds = labels(workdir)

    state = run(config, "--max-iterations", "1")  # the config's 60 labels, one iteration of 2
    assert state.phase == "done" and state.stop_reason.startswith("iteration budget reached (1 ")
    assert [r.iteration for r in state.history] == [0, 1]
    after_one = labels(workdir)
    assert after_one[0] == seeds[0] and len(after_one[1]) == 8
    assert load_config(workdir / "config.resolved.yaml").budget.max_labels == 60

    again = run(config, "--max-iterations", "1")  # a finished run stays finished
    assert again.history == state.history and labels(workdir) == after_one


@pytest.mark.parametrize("option", ["--max-iterations", "--max-labels"])
def test_budget_options_must_be_positive(tmp_path, option):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "workdir": str(tmp_path / "run")}))
    result = CliRunner().invoke(app, ["run", str(config), option, "0"])
    assert result.exit_code == 2 and not (tmp_path / "run").exists()
