"""Workflow state: where a run is (iteration, phase) and what each iteration produced.

Written atomically (``workdir.write_file``: temporary file, fsync, rename) after every phase,
so a killed run always finds a consistent state to resume from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from pyacemaker.workdir import RunPaths, write_file

Phase = Literal["explore", "label", "train", "evaluate", "done"]


class IterationRecord(BaseModel):
    """What one iteration did; RMSEs are on the fixed held-out split, ``test_*_rmse`` over the
    classes the targets apply to."""

    iteration: int
    candidates: int = 0
    md_runs: int = 0
    halts: int = Field(0, description="MD runs stopped by gamma above the halt threshold")
    md_failures: int = Field(0, description="MD runs LAMMPS could not finish (lost atoms, crash)")
    max_gamma: float | None = Field(None, description="largest candidate gamma this iteration")
    held_out_gamma: float | None = Field(
        None, description="90th percentile of the held-out structures' largest gamma (this "
        "iteration's potential)")
    policy: dict[str, Any] | None = Field(None, description="the exploration policy's decision")
    selected: int = 0
    labels_total: int = Field(0, description="labelled structures after this iteration")
    failed_total: int = 0
    functions_per_element: int | None = None
    trainer: str | None = Field(None, description="linear or nonlinear")
    train_energy_rmse: float | None = Field(None, description="meV/atom")
    train_force_rmse: float | None = Field(None, description="eV/Angstrom")
    test_energy_rmse: float | None = Field(None, description="meV/atom")
    test_force_rmse: float | None = Field(None, description="eV/Angstrom")
    test_by_class: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="held-out errors per structure class: n_structures, "
        "energy_rmse (meV/atom), force_rmse (eV/Angstrom), ...; beyond_force_limit apart")
    n_train: int = 0
    n_test: int = 0
    label_seconds: float = 0.0
    fit_seconds: float = 0.0
    validation_passed: bool | None = Field(None, description="the potential passed validation")
    validation_failed: list[str] = Field(default_factory=list, description="failed checks")
    validation_seconds: float = 0.0
    phase_seconds: dict[str, float] = Field(
        default_factory=dict, description="wall time of each phase (explore, label, train, "
        "evaluate), summed over resumes, s")
    engine_seconds: dict[str, float] = Field(
        default_factory=dict, description="the part of each phase's wall time in which an "
        "engine (oracle, LAMMPS, pyace, pacemaker) was running, s")


class WorkflowState(BaseModel):
    """The resumable position of a run and its history."""

    iteration: int = 0
    phase: Phase = "explore"
    history: list[IterationRecord] = Field(default_factory=list)
    stop_reason: str | None = None

    def record(self, iteration: int) -> IterationRecord:
        """The record of ``iteration``, created on first use."""
        for rec in self.history:
            if rec.iteration == iteration:
                return rec
        rec = IterationRecord(iteration=iteration)
        self.history.append(rec)
        return rec

    def save(self, workdir: Path) -> None:
        """Atomically replace ``workdir/state.json``."""
        write_file(RunPaths(workdir).state, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, workdir: Path) -> WorkflowState:
        """State of ``workdir``, or a fresh state if the run has not started."""
        path = RunPaths(workdir).state
        if not path.is_file():
            return cls()
        return cls.model_validate_json(path.read_text())
