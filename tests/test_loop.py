"""The real active-learning loop on EMT copper: artifacts, status, and kill/resume safety."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from ase.db import connect
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import load_config
from pyacemaker.state import WorkflowState

TESTS = Path(__file__).parent
SLOW = "ase:slow_emt:SlowEMT"  # EMT with a delay, logging every calculation (tests/slow_emt.py)
SMALL = {
    "composition": "Cu",
    "budget": {"max_iterations": 2, "max_labels": 60},
    "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
    "exploration": {"seed_labels": 16, "labels_per_iteration": 8, "md_steps": 30,
                    "md_temperatures": [700], "rare_events": {"when": "never"}},
    "trainer": {"kind": "linear"},  # these tests are about the loop; tests/test_nonlinear.py fits
}  # kMC in the loop: tests/test_rare_events.py


def write_config(folder: Path, engine: str, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {**SMALL, "workdir": str(folder / "run"), "oracle": {"engine": engine, **extra}}
    if engine == SLOW:  # the kill tests count oracle calls; validation would add its own
        data["validation"] = {"every_iteration": False}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def emt_run(tmp_path_factory) -> tuple[Path, Path]:
    """(config, workdir) of a finished two-iteration EMT run, made through the CLI."""
    folder = tmp_path_factory.mktemp("emt")
    config = write_config(folder, "emt")
    result = CliRunner().invoke(app, ["run", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    return config, folder / "run"


def test_two_iteration_emt_loop_leaves_everything_in_workdir(emt_run):
    config, run = emt_run
    for name in ("dataset.db", "state.json", "config.resolved.yaml", "seeds.extxyz", "run.log",
                 "potential/potential.yace"):
        assert (run / name).is_file(), name
    for i in range(3):
        folder = run / "iterations" / f"iter_{i:03d}" / "potential"
        assert {"potential.yaml", "potential.yace", "potential.asi"} <= {p.name for p in folder.iterdir()}
    state = WorkflowState.load(run)
    assert state.phase == "done" and "iteration budget" in state.stop_reason
    assert [r.iteration for r in state.history] == [0, 1, 2]
    md_logs = list((run / "iterations" / "iter_001" / "md").glob("*/log.lammps.gz"))
    assert md_logs and len(md_logs) == state.history[1].md_runs  # exploration ran LAMMPS
    assert all(r.test_energy_rmse is not None for r in state.history)
    for r in state.history:  # where the time went, as the run recorded it
        assert set(r.phase_seconds) == set(r.engine_seconds) == {"explore", "label", "train", "evaluate"}
        assert all(0 <= r.engine_seconds[p] <= r.phase_seconds[p] for p in r.phase_seconds)
        assert r.engine_seconds["label"] > 0 and r.engine_seconds["train"] > 0
    assert state.history[1].engine_seconds["explore"] > 0  # LAMMPS and the potential's γ
    rows = list(connect(str(run / "dataset.db")).select())
    total = state.history[-1].labels_total
    budgeted = [r for r in rows if not r.get("test_only")]  # EMT is cheap: thin classes topped up
    assert total == len(rows) and len(budgeted) == sum(r.selected for r in state.history) <= 16 + 2 * 8
    assert {r.generator for r in rows if r.iteration > 0} & {"md", "rattle", "strain"}
    assert all(r.status == "labelled" and r.data["oracle"]["engine"] == "emt" for r in rows)
    resolved = load_config(run / "config.resolved.yaml")
    assert resolved.trainer.cutoff and resolved.trainer.zbl_outer
    status = CliRunner().invoke(app, ["status", str(run), "--json"])
    assert json.loads(status.output)["history"][2]["labels_total"] == total
    table = CliRunner().invoke(app, ["status", str(run)])
    assert "E meV/at" in table.output and "stopped" in table.output
    again = CliRunner().invoke(app, ["run", str(config), "--no-progress"])  # finished: no-op
    assert again.exit_code == 0 and len(list(connect(str(run / "dataset.db")).select())) == total


def test_a_cheap_oracle_tops_up_thin_classes_outside_the_label_budget(emt_run):
    """Thin classes get test-only labels of unselected candidates (up to targets.min_held_out
    held-out structures while the iteration's candidates last: tests/test_heldout.py); those
    labels are held out and not counted in budget.max_labels."""
    _, run = emt_run
    rows = list(connect(str(run / "dataset.db")).select())
    extra = [r for r in rows if r.get("test_only")]
    assert extra and all(r.split == "test" and r.iteration > 0 for r in extra)
    held_out = Counter(r.generator for r in rows if r.split == "test")
    assert max(held_out.values()) >= 5  # this small run's 16-18 candidates per iteration run out
    state = WorkflowState.load(run)
    budgeted = len(rows) - len(extra)
    assert budgeted == sum(r.selected for r in state.history)
    fit = state.history[-1].fit
    assert sum(e.n_structures for e in fit.test_by_class.values()) + (
        fit.test_beyond_force_limit.n_structures if fit.test_beyond_force_limit else 0) == sum(
        held_out.values())


def test_every_iteration_is_validated_and_reported(emt_run):
    _, run = emt_run
    state = WorkflowState.load(run)
    for record in state.history:
        stored = json.loads((run / "iterations" / f"iter_{record.iteration:03d}" / "validation"
                             / "validation.json").read_text())
        assert record.validation_passed is stored["passed"]
        assert record.validation_failed == [c["name"] for c in stored["checks"] if c["passed"] is False]
        assert stored["eos_oracle"] is not None  # EMT is cheap: its bulk modulus is compared
        assert [h["iteration"] for h in stored["history"]] == list(range(record.iteration + 1))
    final = json.loads((run / "iterations" / "iter_002" / "validation" / "validation.json").read_text())
    assert final["stop_reason"] == state.stop_reason
    assert (run / "validation_report.html").read_text() == (
        run / "iterations" / "iter_002" / "validation" / "validation_report.html").read_text()
    assert state.history[2].policy is not None
    html = (run / "validation_report.html").read_text()
    assert "Exploration policy per iteration" in html and state.history[2].policy.reasons[0] in html
    assert "valid" in CliRunner().invoke(app, ["status", str(run)]).output
    again = CliRunner().invoke(app, ["validate", str(run / "potential"), "--output", str(run.parent),
                                     "--no-progress"])  # inside the workdir: its data and targets
    assert again.exit_code in (0, 1) and "held-out energy RMSE" in again.output


def test_loop_stops_when_converged_and_says_why(tmp_path):
    """Reachable targets and MD at the user's (hence hottest) temperature: once a potential
    meets the targets and a full exploration finds nothing above the halt threshold, the run
    stops before its budget and says so."""
    data = {**SMALL, "workdir": str(tmp_path / "run"), "oracle": {"engine": "emt"},
            "budget": {"max_iterations": 6, "max_labels": 200},
            "targets": {"energy_rmse_mev_per_atom": 5.0, "force_rmse_ev_per_angstrom": 0.2},
            "validation": {"every_iteration": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "config.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    state = WorkflowState.load(tmp_path / "run")
    assert state.stop_reason.startswith("converged: held-out RMSE within targets")
    assert "700 K" in state.stop_reason and state.iteration < 6
    last = state.history[-1]
    assert last.halts == 0 and last.max_gamma < last.policy.gamma_halt and last.selected == 0
    assert "converged" in CliRunner().invoke(app, ["status", str(tmp_path / "run")]).output


# ---------------------------------------------------------------------------- kill / resume

def start_run(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYACEMAKER_TEST_LOG": str(log)}
    with open(log.with_suffix(".out"), "w") as output:  # a file: a chatty run never blocks
        return subprocess.Popen([sys.executable, "-m", "pyacemaker.cli", "run", str(config),
                                 "--no-progress"], env=env, start_new_session=True,
                                stdout=output, stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, condition, timeout: float = 240) -> None:
    """SIGKILL the run's whole process group (workers included) once ``condition()``."""
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"run ended before the kill (exit {process.returncode})"
        assert time.time() < deadline, "condition never reached"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def phase(run: Path) -> tuple[int, str]:
    try:
        state = WorkflowState.load(run)
    except ValueError:
        return -1, ""
    return state.iteration, state.phase


def rows(run: Path) -> list[tuple]:
    db = connect(str(run / "dataset.db"))
    return [(r.hash, r.status, r.split, r.iteration, r.generator, r.get("energy"))
            for r in db.select(sort="id")]


def labelled_hashes(run: Path) -> set[str]:
    return {r[0] for r in rows(run) if r[1] == "labelled"}


def logged(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with the slow oracle, in this process."""
    folder = tmp_path_factory.mktemp("reference")
    sys.path.insert(0, str(TESTS))  # before loading: the oracle's class is imported at start-up
    try:
        Workflow(load_config(write_config(folder, SLOW)), show_progress=False).run()
    finally:
        sys.path.remove(str(TESTS))
    return folder / "run"


def resume_and_compare(config: Path, run: Path, reference: Path, before: set[str],
                       log: Path) -> None:
    process = start_run(config, log)
    assert process.wait(timeout=600) == 0, log.with_suffix(".out").read_text()[-3000:]
    got, expected = rows(run), rows(reference)
    assert [r[:5] for r in got] == [r[:5] for r in expected]  # same structures, same splits
    assert len({r[4] for r in got if r[2] == "test"}) >= 2  # the split is stratified by class
    assert [r[5] for r in got] == pytest.approx([r[5] for r in expected], rel=1e-12)
    recomputed = set(logged(log)) & before
    assert not recomputed, f"{len(recomputed)} stored labels were computed again"
    assert len(set(logged(log))) == len(logged(log))


def test_sigkill_during_labelling_then_resume_matches_uninterrupted_run(tmp_path, reference):
    config = write_config(tmp_path, SLOW)
    run = tmp_path / "run"

    def mid_labelling() -> bool:
        return phase(run) == (0, "label") and len(logged(tmp_path / "first.log")) >= 4

    kill_when(start_run(config, tmp_path / "first.log"), mid_labelling)
    before = labelled_hashes(run)
    statuses = [r[1] for r in rows(run)]
    assert 0 < len(before) < len(statuses) and "pending" in statuses  # really mid-labelling
    resume_and_compare(config, run, reference, before, tmp_path / "second.log")


def test_sigkill_during_training_then_resume_matches_uninterrupted_run(tmp_path, reference):
    config = write_config(tmp_path, SLOW)
    run = tmp_path / "run"
    kill_when(start_run(config, tmp_path / "first.log"), lambda: phase(run) == (1, "train"))
    assert not (run / "iterations" / "iter_001" / "potential" / "fit.json").exists()
    before = labelled_hashes(run)
    assert before and "pending" not in {r[1] for r in rows(run)}
    resume_and_compare(config, run, reference, before, tmp_path / "second.log")


def test_chaos_many_random_kills_then_the_run_matches_uninterrupted_run(tmp_path, reference):
    """SIGKILL the run's process group at random moments (a seeded RNG), eight times over one run,
    resuming each time: nothing stored is lost or computed again, and the final dataset and
    potential equal the uninterrupted run's."""
    config, run = write_config(tmp_path, SLOW), tmp_path / "run"
    rng, stored, interrupted = random.Random(17), set(), []
    seconds = sum(sum(r.phase_seconds.values()) for r in WorkflowState.load(reference).history)
    for kill in range(8):
        log = tmp_path / f"part{kill}.log"
        process = start_run(config, log)
        while process.poll() is None and not log.with_suffix(".out").read_text():
            time.sleep(0.02)  # the run has started (its first line): from here on, any moment
        time.sleep(rng.uniform(0.02, 0.3) * seconds)  # as long as the run's phases take here
        if process.poll() is not None:
            break  # finished before this kill
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert not set(logged(log)) & stored, "a stored label was computed again"
        now = labelled_hashes(run) if (run / "dataset.db").exists() else set()
        assert stored <= now, "a stored label was lost"
        stored = now
        interrupted.append(phase(run))
    assert len(interrupted) >= 5 and len(set(interrupted)) >= 3, interrupted  # many moments
    resume_and_compare(config, run, reference, stored, tmp_path / "last.log")
    assert potential_coefficients(run) == pytest.approx(potential_coefficients(reference), rel=1e-9)


def potential_coefficients(run: Path) -> list[float]:
    """Every number of the final potential's B-basis file, in order."""
    text = (run / "potential" / "potential.yaml").read_text()
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", text)]
