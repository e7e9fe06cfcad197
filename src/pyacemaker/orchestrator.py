"""The active-learning loop: explore -> select -> label -> train -> evaluate, resumable.

Every phase is idempotent and the state is saved after each one, so a run killed at any moment
resumes where it stopped: selected structures live in the dataset as ``pending`` rows, each
label is stored the moment it arrives, and a fit becomes visible only when complete.

The workdir's layout and the way files and folders are published in it: ``pyacemaker.workdir``
(``RunPaths``, ``write_file``, ``staged_folder``).
"""

from __future__ import annotations

import functools
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import ase.io
import numpy as np
import yaml
from ase import Atoms
from rich.console import Console

from pyacemaker import timing
from pyacemaker.candidates import Candidate
from pyacemaker.composition import parse_composition
from pyacemaker.config import Config, check_resumable, config_from_dict, dump_config
from pyacemaker.dataset import FAILED, LABELLED, Dataset
from pyacemaker.dispatch import Dispatcher, Task, make_dispatcher, store_files
from pyacemaker.dynamics.md import LammpsEngine
from pyacemaker.errors import ConfigError, ParseError
from pyacemaker.explore import ExplorationResult, Explorer, StandardExplorer
from pyacemaker.oracle import task as label_task
from pyacemaker.oracle.registry import find_engine
from pyacemaker.records import FitResult, Grade, LabelResult, PolicyDecision
from pyacemaker.state import WorkflowState
from pyacemaker.status import fmt, history_table
from pyacemaker.structures import defect_atoms
from pyacemaker.structures.policy import (
    adapt,
    gamma_thresholds,
    initial_decision,
    rare_events,
)
from pyacemaker.structures.seeds import seed_structures
from pyacemaker.training.basis import describe
from pyacemaker.training.linear import load_fit
from pyacemaker.training.potential import Potential
from pyacemaker.training.selection import select
from pyacemaker.training.trainer import FitOutcome, fit_task
from pyacemaker.validation.report import write_report
from pyacemaker.validation.run import validate_in_run
from pyacemaker.validation.validate import ValidationResult
from pyacemaker.workdir import (
    RunLogHandler,
    RunPaths,
    publish_copy,
    staged_folder,
    storage_error,
    write_file,
)

log = logging.getLogger(__name__)

# How the stop reasons of a spent budget start: such a run goes on when the budget is raised.
ITERATION_BUDGET, LABEL_BUDGET = "iteration budget", "label budget"
BUDGET_STOPS = (f"{ITERATION_BUDGET} reached", f"{LABEL_BUDGET} reached")


class Workflow:
    """One run in one workdir. ``run()`` starts it or resumes it."""

    def __init__(self, config: Config, console: Console | None = None,
                 show_progress: bool = True, explorer: Explorer | None = None) -> None:
        self.config = config
        self.workdir = config.workdir
        self.paths = RunPaths(config.workdir)
        self.console = console or Console()
        self.show_progress = show_progress
        self.dispatcher = self.make_dispatcher()
        self.explorer = explorer or standard_explorer(config, self.dispatcher)
        self.state = WorkflowState()
        self.dataset: Dataset | None = None

    # ------------------------------------------------------------------ driver

    def run(self) -> WorkflowState:
        """Run phases until the stop criterion; return the final state.

        Raises
        ------
        StorageError
            A file of the run could not be written (a full disk): the run stops, what was
            stored before is intact, and running again resumes.
        """
        try:
            return self._run()
        except OSError as err:
            raise storage_error(err, self.workdir) from err

    def _run(self) -> WorkflowState:
        self._prepare_workdir()
        handler = RunLogHandler(self.paths.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("pyacemaker")
        logger.addHandler(handler)
        level = logger.level
        if level == logging.NOTSET:  # run as a library: run.log still gets the INFO story
            logger.setLevel(logging.INFO)
        try:
            self.state = WorkflowState.load(self.workdir)
            self.dataset = self.open_dataset()
            self.continue_if_budget_raised()
            if self.state.phase != "explore" or self.state.iteration:
                log.info("resuming at iteration %d, phase %s", self.state.iteration, self.state.phase)
            phases = {"explore": self.explore, "label": self.label, "train": self.train,
                      "evaluate": self.evaluate}
            while self.state.phase != "done":
                self.timed(phases)
                self.state.save(self.workdir)
            log.info("stopped: %s", self.state.stop_reason)
            self.console.print(history_table(self.state, self.config.targets))
            return self.state
        finally:
            self.dispatcher.close()
            logger.removeHandler(handler)
            logger.setLevel(level)
            handler.close()

    def open_dataset(self) -> Dataset:
        """The run's dataset; a run whose state has moved on needs the stored one.

        Raises
        ------
        ParseError
            ``dataset.db`` is damaged, not a dataset, or missing or empty while ``state.json``
            says structures were selected (the file is left as it is).
        """
        path = self.paths.dataset
        started = self.state.iteration > 0 or self.state.phase in ("label", "train", "evaluate")
        if started and (not path.is_file() or path.stat().st_size == 0):
            raise ParseError(
                f"{path} is {'empty' if path.is_file() else 'missing'}, but {self.paths.state} "
                f"says the run is at iteration {self.state.iteration}, phase {self.state.phase}: "
                "restore the dataset from a backup; a run cannot resume without it")
        return Dataset(path, self.config.trainer.test_fraction)

    def make_dispatcher(self) -> Dispatcher:
        """Where this run's tasks go (``executor``); local pools sized by the worker counts."""
        workers = {"label": self.config.oracle.workers, "md": self.config.dynamics.workers,
                   "search": self.config.dynamics.workers, "fit": 1}
        return make_dispatcher(self.config.executor, workers, self.paths.parsl, self.show_progress)

    def timed(self, phases: dict[str, Callable[[], None]]) -> None:
        """Run the current phase; add its wall and engine time to its iteration's record."""
        name, record = self.state.phase, self.state.record(self.state.iteration)
        with timing.phase() as spent:
            phases[name]()
        record.phase_seconds[name] = record.phase_seconds.get(name, 0.0) + spent.wall
        record.engine_seconds[name] = record.engine_seconds.get(name, 0.0) + spent.engine

    def _prepare_workdir(self) -> None:
        """Create the workdir, or check that a resumed run keeps its settings; write the
        resolved config."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.paths.resolved_config.is_file():
            check_resumable(read_resolved_config(self.workdir), self.config)
        write_file(self.paths.resolved_config, dump_config(self.config))

    # ------------------------------------------------------------------ phases

    def explore(self) -> None:
        """Generate candidates and add the selected ones to the dataset as pending rows."""
        i = self.state.iteration
        if self.dataset.count(iteration=i):
            log.info("iteration %d: selection already stored, skipping exploration", i)
            self.state.phase = "label"
            return
        potential = None if i == 0 else self.potential_of(i - 1)
        decision = self.decision(i) if potential else None
        self.state.record(i).policy = decision
        result = self.run_explorer(i, potential, decision)
        if decision and self.converged(i, decision, result.halts + result.kmc_halts,
                                       result.max_gamma):
            self.state.record(i).labels_total = self.dataset.count(status=LABELLED)
            self.finish(i, f"converged: held-out RMSE within targets and MD up to "
                           f"{max(decision.temperatures_k):g} K (the policy's hottest)"
                           f"{' and kMC saddle searches' if decision.kmc else ''} found no γ "
                           f"above the halt threshold {decision.gamma_halt:g}")
            return
        room = self.config.budget.max_labels - self.dataset.budget_count()
        chosen = self.selection(i, result.candidates, potential, decision, room)
        if not chosen and room > 0 and decision and self.targets_met(i - 1):
            log.info("iteration %d: nothing above γ %g; keeping the potential and exploring "
                     "hotter next", i, decision.gamma_collect)
            self.carry_over(i)
        elif not chosen:
            self.finish(i, self.stop_reason_without_selection(room))
        else:
            rows = [(c.atoms, {**c.provenance, "iteration": i, "gamma": round(c.gamma, 4)})
                    for c in result.candidates]
            added = self.dataset.add_pending([rows[k] for k in chosen],
                                             *self.held_out_top_up(rows, chosen))
            if added > len(chosen):
                log.info("iteration %d: %d more held out (test only, outside the label budget) "
                         "for classes below %d held-out structures", i, added - len(chosen),
                         self.config.targets.min_held_out)
            self.state.phase = "label"

    def held_out_top_up(self, rows: list[tuple[Atoms, dict]], chosen: list[int],
                        ) -> tuple[list[tuple[Atoms, dict]], int]:
        """The unchosen candidates (highest γ first: the closest to what selection labels) the
        dataset may add as test-only rows until each class has ``targets.min_held_out``
        held-out structures, and that minimum; none when the oracle is not cheap (calculator
        engines), whose labels cost seconds."""
        if not find_engine(self.config.oracle.engine).cheap:
            return [], 0
        taken = set(chosen)
        order = sorted((k for k in range(len(rows)) if k not in taken),
                       key=lambda k: -rows[k][1]["gamma"])
        return [rows[k] for k in order], self.config.targets.min_held_out

    def run_explorer(self, i: int, potential: Potential | None,
                     decision: PolicyDecision | None) -> ExplorationResult:
        """Candidates of iteration ``i`` from the explorer; what it saw goes into the record."""
        log.info("iteration %d: exploring%s", i, "" if potential else " (seed structures)")
        if decision:
            log.info("iteration %d: policy: T %s K, max strain %.3f; %s", i,
                     decision.temperatures_k, decision.max_strain, "; ".join(decision.reasons))
        result = self.explorer.explore(self.starts(), potential, i, self.paths.md_of(i), decision)
        record = self.state.record(i)
        record.candidates = len(result.candidates)
        record.md_runs, record.halts = result.md_runs, result.halts
        record.md_failures = len(result.md_failures)
        record.kmc_runs, record.kmc_halts = result.kmc_runs, result.kmc_halts
        record.processes = result.processes
        record.max_gamma = result.max_gamma if potential else None
        log.info("iteration %d: %d candidates (max gamma %.2f, %d/%d MD runs halted)", i,
                 len(result.candidates), result.max_gamma, result.halts, result.md_runs)
        return result

    def selection(self, i: int, candidates: list[Candidate], potential: Potential | None,
                  decision: PolicyDecision | None, room: int) -> list[int]:
        """Indices of the candidates to label, at most ``room``: every seed candidate, then
        MaxVol above the policy's collect threshold (extrapolating ones only once the targets
        are met). The count is saved with the state."""
        if potential is None or decision is None:
            chosen = list(range(min(room, len(candidates))))
        else:
            n = min(room, self.config.exploration.labels_per_iteration)
            chosen = select(potential, [c.atoms for c in candidates],
                            np.array([c.gamma for c in candidates]), n, decision.gamma_collect,
                            require_extrapolation=self.targets_met(i - 1))
        self.state.record(i).selected = len(chosen)
        self.state.save(self.workdir)
        log.info("iteration %d: %d selected", i, len(chosen))
        return chosen

    def label(self) -> None:
        """Label every pending structure; each result is stored as it arrives."""
        i = self.state.iteration
        pending = self.dataset.pending()
        log.info("iteration %d: labelling %d structures with %s", i, len(pending),
                 self.config.oracle.engine)
        record = self.state.record(i)
        lost = functools.partial(label_task.lost_label, self.config.oracle)
        tasks = [Task(row_id, label_task.label, (self.config.oracle, atoms), on_lost=lost)
                 for row_id, atoms in pending]
        record.label_seconds += _timed(lambda: self.dispatcher.run(
            "label", tasks, self.store_label, f"labelling ({self.config.oracle.engine})"))
        record.labels_total = self.dataset.count(status=LABELLED)
        record.failed_total = self.dataset.count(status=FAILED)
        if record.failed_total:
            log.warning("%d structures failed to label so far (kept with their reasons)",
                        record.failed_total)
        self.state.phase = "train"

    def store_label(self, row_id: int, result: LabelResult) -> None:
        """Keep a label's files under ``dft/`` (gzip-compressed), then the label itself."""
        store_files(self.paths.dft, result.logs)
        self.dataset.store_label(row_id, result)

    def train(self) -> None:
        """Fit this iteration's potential (skipped if the fit already finished)."""
        i = self.state.iteration
        folder = self.paths.potential_of(i)
        fitted = load_fit(folder)
        if fitted is None:
            train, test = self.dataset.labelled("train"), self.dataset.labelled("test")
            log.info("iteration %d: fitting on %d structures (%d held out)", i, len(train),
                     len(test))
            previous = self.potential_of(i - 1).files() if i > 0 else None
            task = Task(i, fit_task, (train, test, self.config.elements, self.config.trainer,
                                      self.config.targets, previous, self.budget_spent(i),
                                      self.show_progress and self.config.executor.kind == "local"))
            outcomes: list[FitOutcome] = []
            self.dispatcher.run("fit", [task], lambda _, outcome: outcomes.append(outcome),
                                f"fitting ({self.config.trainer.kind})")
            with staged_folder(folder) as staging:
                store_files(staging, outcomes[0].files)
            _, fit = load_fit(folder)
        else:
            fit = fitted[1]
        self.state.record(i).fit = fit
        if fit.basis is not None:
            log.info("iteration %d: basis %s: %s (size limit %d: %s)", i, describe(fit.basis.chosen),
                     fit.basis.reason, fit.basis.max_functions, fit.basis.limit)
        grade = self.config.targets.grade(fit.test_by_class)
        for name, errors in class_errors(fit).items():
            log.info("iteration %d: held out %-18s %3d structures  %8.2f meV/atom  %.4f eV/A%s", i,
                     name, errors["n_structures"], errors["energy_rmse"], errors["force_rmse"],
                     grade_note(grade, name))
        self.state.phase = "evaluate"

    def evaluate(self) -> None:
        """Publish and validate the potential, decide whether to go on."""
        i = self.state.iteration
        publish_copy(self.paths.potential_of(i), self.paths.potential)
        fit = self.state.record(i).fit
        log.info("iteration %d: held-out RMSE %s meV/atom, %s eV/A (%d train, %d test structures)",
                 i, fmt(fit.test_energy_rmse, "{:.2f}"), fmt(fit.test_force_rmse, "{:.4f}"),
                 fit.n_train, fit.n_test)
        if self.config.validation.every_iteration:
            self.validate(i)
        if i >= self.config.budget.max_iterations:
            self.finish(i, f"{ITERATION_BUDGET} reached ({i} iterations); targets "
                           f"{'met' if self.targets_met(i) else 'not met'}")
        elif self.budget_spent(i):
            self.finish(i, f"{LABEL_BUDGET} reached ({self.config.budget.max_labels} structures); "
                           f"targets {'met' if self.targets_met(i) else 'not met'}")
        else:
            self.state.iteration = i + 1
            self.state.phase = "explore"

    def validate(self, i: int) -> None:
        """Grade iteration ``i``'s potential and write its report (kept when already written);
        the workdir's ``validation_report.html`` is the latest one."""
        stored = self.paths.validation_result_of(i)
        if stored.is_file():
            result = ValidationResult.model_validate_json(stored.read_text())
        else:
            log.info("iteration %d: validating the potential", i)
            self.state.save(self.workdir)  # the report's history includes this iteration
            result = validate_in_run(self.potential_of(i), self.config, self.workdir,
                                     show_progress=self.show_progress)
            write_report(result, self.paths.validation_of(i))
        write_file(self.paths.report, self.paths.report_of(i).read_text())
        record = self.state.record(i)
        record.validation_passed = result.passed
        record.validation_failed = [c.name for c in result.checks if c.passed is False]
        record.validation_seconds = result.seconds
        log.info("iteration %d: validation %s%s (%s)", i, "passed" if result.passed else "FAILED",
                 "" if result.passed else ": " + ", ".join(record.validation_failed),
                 self.paths.report)

    def add_stop_reason_to_report(self) -> None:
        """Rewrite the latest report (if any) with the reason the run stopped."""
        results = self.paths.validation_results()
        if not results:
            return
        result = ValidationResult.model_validate_json(results[-1].read_text())
        report = write_report(result.model_copy(update={"stop_reason": self.state.stop_reason}),
                              results[-1].parent)
        write_file(self.paths.report, report.read_text())

    # ------------------------------------------------------------------ helpers

    def finish(self, iteration: int, reason: str) -> None:
        self.state.stop_reason = reason
        self.state.phase = "done"
        self.state.iteration = iteration
        self.state.save(self.workdir)
        self.add_stop_reason_to_report()

    def continue_if_budget_raised(self) -> None:
        """A run that stopped on its budget goes on when this config's budget is larger (a trial
        with ``run --max-iterations 1``, then the full run): after its last fitted iteration, or
        from the exploration of an iteration that stopped before selecting anything."""
        state = self.state
        if state.phase != "done" or not (state.stop_reason or "").startswith(BUDGET_STOPS):
            return
        i = state.iteration
        fitted = state.record(i).fit is not None
        if (i + fitted > self.config.budget.max_iterations
                or self.dataset.budget_count() >= self.config.budget.max_labels):
            return
        log.info("budget raised (%d iterations, %d labels): continuing after iteration %d",
                 self.config.budget.max_iterations, self.config.budget.max_labels, i - (not fitted))
        state.iteration, state.phase, state.stop_reason = i + fitted, "explore", None

    def budget_spent(self, i: int) -> bool:
        """Iteration ``i`` is the run's last: its iteration or label budget is used up."""
        return (i >= self.config.budget.max_iterations
                or self.dataset.budget_count() >= self.config.budget.max_labels)

    def stop_reason_without_selection(self, room: int) -> str:
        if room <= 0:
            return f"{LABEL_BUDGET} reached ({self.config.budget.max_labels} structures)"
        return "exploration produced no candidates"

    def converged(self, i: int, decision: PolicyDecision, halts: int, max_gamma: float) -> bool:
        """The previous potential meets the targets and a full iteration of MD at the policy's
        hottest conditions, and of kMC unless the config turns it off, found nothing above the
        halt threshold (``halts``: MD and kMC runs stopped by γ)."""
        kmc_done = decision.kmc or self.config.exploration.rare_events.when == "never"
        return (self.targets_met(i - 1) and decision.at_hottest and kmc_done and halts == 0
                and max_gamma < decision.gamma_halt)

    def carry_over(self, i: int) -> None:
        """Iteration ``i`` labels nothing: it keeps the previous potential and its scores."""
        previous, record = self.state.record(i - 1), self.state.record(i)
        publish_copy(self.paths.potential_of(i - 1), self.paths.potential_of(i))
        record.fit = previous.fit
        record.labels_total, record.failed_total = previous.labels_total, previous.failed_total
        self.state.phase = "evaluate"

    def targets_met(self, iteration: int) -> bool:
        """Held-out errors of ``iteration`` within the targets: the report's verdict
        (``TargetsConfig.grade``), every class with enough held-out structures within its own."""
        fit = self.state.record(iteration).fit
        return fit is not None and self.config.targets.grade(fit.test_by_class).passed is True

    def decision(self, iteration: int) -> PolicyDecision:
        """The exploration policy for ``iteration`` (>= 1): the composition's start, then
        adapted to the previous iteration's MD halts (stored decisions make this resumable)."""
        s = self.config.exploration
        configured = (s.gamma_collect, s.gamma_halt)
        previous = self.state.record(iteration - 1)
        if previous.policy is None:
            decision = initial_decision(self.config.elements, s.max_strain, s.md_temperatures,
                                        s.md_pressures_gpa, configured)
        else:
            decision = adapt(previous.policy, previous.halts,
                             previous.md_runs, fixed_temperatures=s.md_temperatures is not None,
                             fixed_pressures=bool(s.md_pressures_gpa))
        decision = rare_events(decision, s.rare_events.when, self.starts_have_defects(),
                               md_quiet=previous.md_runs > 0 and previous.halts == 0)
        return gamma_thresholds(decision, configured,
                                previous.fit.held_out_gamma if previous.fit else None,
                                self.targets_met(iteration - 1))

    def starts_have_defects(self) -> bool:
        """A structure from the user's files has defect atoms (a vacancy, a surface, ...)."""
        return any(len(defect_atoms(atoms)) for origin, atoms in self.starts()
                   if origin.startswith("file:"))

    def potential_of(self, iteration: int) -> Potential:
        return Potential.load(self.paths.potential_of(iteration))

    def starts(self) -> list[tuple[str, Atoms]]:
        """Seed structures, generated once and kept in ``seeds.extxyz`` for resumes."""
        path = self.paths.seeds
        if not path.is_file():
            seeds = seed_structures(parse_composition(self.config.composition), self.config.seeds,
                                    self.config.exploration.random_seed)
            for origin, atoms in seeds:
                atoms.info["origin"] = origin
            text = io.StringIO()
            ase.io.write(text, [a for _, a in seeds], format="extxyz")
            write_file(path, text.getvalue())
        return [(a.info["origin"], a) for a in ase.io.read(path, ":", format="extxyz")]


def standard_explorer(config: Config, dispatcher: Dispatcher) -> StandardExplorer:
    """The explorer, its MD runs sent through ``dispatcher``; raises EngineSetupError naming
    the fix when LAMMPS or its ML-PACE plugin is missing here."""
    LammpsEngine(config.dynamics.lammps_command, config.dynamics.timeout_s).check()
    return StandardExplorer(config.exploration, config.dynamics, dispatcher, config.seeds)


def class_errors(fit: FitResult) -> dict[str, dict[str, float]]:
    """The fit's held-out errors per class as plain numbers; the structures beyond the fit's
    force limit as the class ``beyond_force_limit``."""
    out = {name: errors.model_dump() for name, errors in fit.test_by_class.items()}
    if fit.test_beyond_force_limit is not None:
        out["beyond_force_limit"] = fit.test_beyond_force_limit.model_dump()
    return out


def grade_note(grade: Grade, name: str) -> str:
    """How class ``name`` enters the verdict, for the log: its targets and whether it meets
    them, or too few to decide."""
    c = grade.classes.get(name)
    if c is None:
        return ""
    if not c.decides:
        return f"  (too few to decide, n < {grade.min_held_out})"
    met = "met" if c.energy_met and c.force_met else "MISSED"
    return f"  (target {c.energy_target:g} meV/atom, {c.force_target:g} eV/A: {met})"


def read_resolved_config(workdir: Path) -> Config:
    """The settings a run in ``workdir`` was started with.

    Raises
    ------
    ConfigError
        The file is not YAML or does not validate (e.g. edited by hand).
    """
    path = RunPaths(workdir).resolved_config
    try:
        raw = yaml.safe_load(path.read_bytes())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{getattr(err, 'problem', '')} at line {mark.line + 1}" if mark else str(err)
        raise ConfigError(f"{path} is not readable YAML ({where}); move it away and run "
                          "again: it is written again from your config") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} holds no settings; move it away and run again: it is "
                          "written again from your config")
    return config_from_dict(raw, source=str(path))


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
