"""Workflow state: where a run is (iteration, phase) and what each iteration produced.

Written atomically (``workdir.write_file``: temporary file, fsync, rename) after every phase,
so a killed run always finds a consistent state to resume from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, computed_field, model_validator

from pyacemaker.errors import ParseError
from pyacemaker.records import FitResult, PolicyDecision, ProcessRecord
from pyacemaker.workdir import RunPaths, write_file

Phase = Literal["explore", "label", "train", "evaluate", "done"]


class IterationRecord(BaseModel):
    """What one iteration did; RMSEs are on the fixed held-out split, ``test_*_rmse`` over the
    bulk classes (``targets.classes``); the verdict grades each class (``TargetsConfig.grade``)."""

    iteration: int
    candidates: int = 0
    md_runs: int = 0
    halts: int = Field(0, description="MD runs stopped by gamma above the halt threshold")
    md_failures: int = Field(0, description="MD runs LAMMPS could not finish (lost atoms, crash)")
    max_gamma: float | None = Field(None, description="largest candidate gamma this iteration")
    kmc_runs: int = Field(0, description="kinetic Monte Carlo runs (saddle searches) this iteration")
    kmc_halts: int = Field(0, description="kMC runs stopped by gamma above the halt threshold")
    processes: list[ProcessRecord] = Field(
        default_factory=list, description="processes the kMC runs found: barriers, rates")
    policy: PolicyDecision | None = Field(None, description="the exploration policy's decision")
    selected: int = 0
    labels_total: int = Field(0, description="labelled structures after this iteration")
    failed_total: int = 0
    fit: FitResult | None = Field(None, description="this iteration's fit: its errors (train, "
                                  "held out, per class), basis size, trainer, seconds")
    label_seconds: float = 0.0
    validation_passed: bool | None = Field(None, description="the potential passed validation")
    validation_failed: list[str] = Field(default_factory=list, description="failed checks")
    validation_seconds: float = 0.0
    phase_seconds: dict[str, float] = Field(
        default_factory=dict, description="wall time of each phase (explore, label, train, "
        "evaluate), summed over resumes, s")
    engine_seconds: dict[str, float] = Field(
        default_factory=dict, description="the part of each phase's wall time in which an "
        "engine (oracle, LAMMPS, pyace, pacemaker) was running, s")

    @computed_field(description="held-out energy RMSE of the fit, meV/atom")
    @property
    def test_energy_rmse(self) -> float | None:
        return self.fit.test_energy_rmse if self.fit else None

    @computed_field(description="held-out force RMSE of the fit, eV/Angstrom")
    @property
    def test_force_rmse(self) -> float | None:
        return self.fit.test_force_rmse if self.fit else None

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_fit(cls, data: Any) -> Any:
        """Records written before the fit was nested (flat fields) are read into ``fit``."""
        if not isinstance(data, dict) or "fit" in data or data.get("trainer") is None:
            return data
        data = dict(data)
        by_class = dict(data.pop("test_by_class", None) or {})
        flat = {name: data.pop(name, None) for name in (
            "n_train", "n_test", "functions_per_element", "train_energy_rmse", "train_force_rmse",
            "test_energy_rmse", "test_force_rmse", "held_out_gamma")}
        data["fit"] = {**flat, "kind": data.pop("trainer"), "seconds": data.pop("fit_seconds", 0.0),
                       "test_beyond_force_limit": by_class.pop("beyond_force_limit", None),
                       "test_by_class": by_class}
        return data


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
        """State of ``workdir``, or a fresh state if the run has not started.

        Raises
        ------
        ParseError
            ``state.json`` is not a state (truncated, edited, overwritten); the file is left
            as it is and the message says how to go on.
        """
        path = RunPaths(workdir).state
        if not path.is_file():
            return cls()
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValueError as err:
            raise ParseError(
                f"{path} is unreadable ({_gist(err)}); it was left as it is. Restore it "
                f"from a backup, or move it away (mv {path} {path}.corrupt) and run again: the "
                "run then goes through its stored iterations again, reusing every stored label "
                "and fit") from err


def _gist(err: ValueError) -> str:
    """What is wrong with a state file, in a line: pydantic's first errors with their fields."""
    if not isinstance(err, ValidationError):
        return str(err)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in err.errors()[:3])
