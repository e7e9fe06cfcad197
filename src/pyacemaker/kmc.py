"""Adaptive kinetic Monte Carlo with the current potential, as a task of data.

A run (``KMCRun``) starts from a structure with a defect, relaxes it, and at every kMC step
finds the processes out of the current minimum: dimer searches from random displacements around
its defect atoms (``structures.defect_atoms``; random atoms in a perfect crystal), each saddle
joined to a new minimum, each new minimum's barrier from a climbing-image NEB and its rate from
harmonic transition-state theory. One process is then drawn with probability proportional to
its rate (the residence-time algorithm) and the clock advances by ``-ln(u) / total rate``.

Every force call is guarded: where γ passes the halt threshold the run stops and returns that
configuration as a candidate, because rates the potential extrapolates to mean nothing. Saddles
and new minima are candidates too, with their γ; the selection keeps those above collect.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms

from pyacemaker.candidates import Candidate
from pyacemaker.eon import eon_dimer_search, find_eonclient
from pyacemaker.errors import CalculationFailed
from pyacemaker.records import ProcessRecord
from pyacemaker.saddles import (
    SAME_STATE,
    Band,
    Extrapolating,
    GuardedCalculator,
    connected_minimum,
    dimer_search,
    displacements,
    max_displacement,
    minimized,
    neb_path,
    rate,
    vibrational_eigenvalues,
    vineyard_prefactor,
)
from pyacemaker.structures import bare, defect_atoms
from pyacemaker.training.potential import Potential

GENERATOR = "saddle"  # dataset class of every structure a kMC run proposes
FALLBACK_PREFACTOR_HZ = 1e13  # when the Vineyard formula does not apply (soft modes)


@dataclass(frozen=True)
class KMCRun:
    """One kMC run of an iteration: its name, the start's origin and structure, the kMC
    temperature (K), steps, dimer searches per state, γ thresholds, the prefactor (Hz; ``None``:
    Vineyard's from the normal modes), the NEB's moving images, the random seed, and the dimer's
    engine (ase, or eon with eOn's client found on the worker: ``eon_command`` or
    ``eon.find_eonclient``)."""

    name: str
    origin: str
    atoms: Atoms
    temperature_k: float
    steps: int
    searches: int
    gamma_collect: float
    gamma_halt: float
    prefactor_hz: float | None
    neb_images: int
    seed: int
    engine: str = "ase"
    eon_command: str | None = None


@dataclass
class KMCOutcome:
    """What one kMC run sends back: ``status`` (completed: all steps taken; stuck: a state with
    no process found; halted: γ above the halt; failed: with ``error``), the steps taken, the
    simulated time (s), every process found, the candidates and the force calls made."""

    name: str
    status: str = "completed"
    steps: int = 0
    time_s: float = 0.0
    processes: list[ProcessRecord] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    error: str | None = None
    force_calls: int = 0


@dataclass(frozen=True)
class Process:
    """A process out of the current minimum: its record, saddle and final minimum, and the
    largest γ of each."""

    record: ProcessRecord
    saddle: Atoms
    final: Atoms
    saddle_gamma: float
    final_gamma: float


def run_kmc(potential_files: dict[str, bytes], run: KMCRun) -> KMCOutcome:
    """Run ``run`` with the potential given as its files (``Potential.files``)."""
    outcome = KMCOutcome(run.name)
    rng = np.random.default_rng(run.seed)
    with tempfile.TemporaryDirectory(prefix="pyacemaker-kmc-") as tmp:
        potential = Potential.from_files(potential_files, Path(tmp) / "potential")
        calc = GuardedCalculator(potential, run.gamma_halt)
        provenance = {"generator": GENERATOR, "origin": run.origin,
                      "temperature_K": run.temperature_k, "kmc_run": run.name}
        try:
            state = minimized(run.atoms, calc)
            for step in range(run.steps):
                processes, halts = find_processes(state, calc, rng, run, step)
                outcome.processes += [p.record for p in processes]
                outcome.candidates += [
                    Candidate(h.atoms, {**provenance, "kmc_step": step, "stage": h.stage}, h.gamma)
                    for h in halts]
                outcome.candidates += collected(processes, run.gamma_collect,
                                                {**provenance, "kmc_step": step})
                if halts or not processes:  # rates of a partly unknown neighbourhood mean nothing
                    outcome.status = "halted" if halts else "stuck"
                    break
                chosen, waited = choose(processes, rng)
                outcome.processes[len(outcome.processes) - len(processes) + chosen].chosen = True
                outcome.time_s += waited
                outcome.steps = step + 1
                state = processes[chosen].final
        except Extrapolating as halt:  # the start's own relaxation left the known region
            outcome.status = "halted"
            outcome.candidates.append(Candidate(halt.atoms, {
                **provenance, "kmc_step": 0, "stage": "relaxation"}, halt.gamma))
        except CalculationFailed as err:
            outcome.status, outcome.error = "failed", str(err)
        outcome.force_calls = calc.calls
    return outcome


def find_processes(state: Atoms, calc: GuardedCalculator, rng: np.random.Generator,
                   run: KMCRun, step: int) -> tuple[list[Process], list[Extrapolating]]:
    """The distinct processes that ``run.searches`` dimer searches find out of the minimum
    ``state``, each with its NEB barrier, prefactor and rate; and the searches that stopped
    where γ passed the halt threshold (their configurations)."""
    centers = defect_atoms(state)
    if len(centers) == 0:
        centers = np.arange(len(state))
    found: list[Process] = []
    halts: list[Extrapolating] = []
    search = dimer_search
    state_modes = None  # the state's normal modes, for Vineyard prefactors
    if run.engine == "eon":
        search = partial(eon_dimer_search, command=find_eonclient(run.eon_command))
    for _ in range(run.searches):
        stage = "dimer"
        try:
            saddle = search(state, calc, rng, int(rng.choice(centers)))
            stage = "relaxation"
            final = None if saddle is None else connected_minimum(state, saddle, calc)
            if final is None or any(max_displacement(final, p.final) < SAME_STATE for p in found):
                continue
            stage = "neb"
            path = neb_path(state, final, calc, run.neb_images, via=saddle.atoms)
            stage = "prefactor"
            if run.prefactor_hz is None and state_modes is None:
                state_modes = vibrational_eigenvalues(state, calc)  # once per state
            found.append(process(state, path, calc, run, step, state_modes))
        except Extrapolating as halt:
            halt.stage = stage
            halts.append(halt)
        except CalculationFailed:
            continue
    return found, halts


def process(state: Atoms, path: Band, calc: GuardedCalculator, run: KMCRun, step: int,
            state_modes: np.ndarray | None = None) -> Process:
    """The process along the converged band ``path`` out of ``state``: its barrier, prefactor (the
    run's, or Vineyard's at the path's highest image, with the state's ``vibrational_eigenvalues``
    when given) and rate."""
    top, final = path.images[path.top], path.images[-1]
    saddle_gamma, final_gamma = grade(top, calc), grade(final, calc)
    prefactor, source = run.prefactor_hz, "config"
    if prefactor is None:
        prefactor = vineyard_prefactor(state, top, calc, state_modes)
        source = "vineyard" if prefactor is not None else "fallback"
        prefactor = prefactor or FALLBACK_PREFACTOR_HZ
    record = ProcessRecord(
        run=run.name, step=step, barrier_ev=round(path.barrier, 5),
        reverse_barrier_ev=round(path.reverse_barrier, 5), prefactor_hz=prefactor,
        prefactor_from=source, temperature_k=run.temperature_k,
        rate_hz=rate(path.barrier, prefactor, run.temperature_k),
        saddle_gamma=round(saddle_gamma, 4),
        moved_atoms=int((displacements(state, final) > SAME_STATE).sum()))
    return Process(record, top, final, saddle_gamma, final_gamma)


def collected(processes: list[Process], gamma_collect: float, provenance: dict) -> list[Candidate]:
    """The saddles and final minima of ``processes`` whose γ is above ``gamma_collect``."""
    return [Candidate(atoms, {**provenance, "stage": stage}, gamma)
            for p in processes
            for stage, atoms, gamma in (("saddle", p.saddle, p.saddle_gamma),
                                        ("minimum", p.final, p.final_gamma))
            if gamma > gamma_collect]


def choose(processes: list[Process], rng: np.random.Generator) -> tuple[int, float]:
    """The residence-time algorithm: a process index drawn with probability proportional to
    its rate, and the time (s) spent in the state before it happens."""
    rates = np.array([p.record.rate_hz for p in processes])
    total = rates.sum()
    index = int(np.searchsorted(np.cumsum(rates), rng.random() * total, side="right"))
    return min(index, len(processes) - 1), -math.log(1.0 - rng.random()) / total


def grade(atoms: Atoms, calc: GuardedCalculator) -> float:
    """Largest extrapolation grade of ``atoms`` (evaluated with ``calc``, so still guarded)."""
    probe = bare(atoms)
    probe.calc = calc
    probe.get_potential_energy()
    return float(np.max(calc.results["gamma"]))

