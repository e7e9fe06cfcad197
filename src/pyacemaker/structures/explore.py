"""Exploration: candidate structures for labelling, behind one interface.

``Explorer.explore`` takes the starting structures and the current potential (``None`` before
the first fit) and returns candidates with provenance and extrapolation grade. The standard
explorer perturbs the starts (rattle, strain) and runs LAMMPS MD with the current ACE + ZBL
potential, which dumps frames whose gamma exceeds the collect threshold and halts above the
halt threshold.
"""

from __future__ import annotations

import heapq
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms
from rich.progress import MofNCompleteColumn, Progress

from pyacemaker.config import ExplorationConfig
from pyacemaker.dynamics.md import LammpsEngine, MDRequest, MDResult
from pyacemaker.errors import ParseError
from pyacemaker.structures import bare
from pyacemaker.training.potential import Potential
from pyacemaker.training.selection import max_gamma

log = logging.getLogger(__name__)

SEED_SCALES = (1.0, 0.95, 1.05, 0.9, 1.1, 0.85)  # linear scales of the seeds, most likely
# first: prototypes scaled from covalent radii can miss the lattice constant by ~10%; later
# iterations start from the fitted potential's own minimum (``equilibrate``)
EQUILIBRATION_SCALES = np.linspace(0.85, 1.10, 11)  # scan for the potential's best volume


@dataclass
class Candidate:
    """One structure that may be labelled; ``gamma`` is its largest per-atom grade."""

    atoms: Atoms
    provenance: dict[str, Any]
    gamma: float = 0.0


@dataclass
class ExplorationResult:
    """Candidates of one iteration and what the MD runs saw."""

    candidates: list[Candidate] = field(default_factory=list)
    md_runs: int = 0
    halts: int = 0
    md_failures: list[str] = field(default_factory=list)

    @property
    def max_gamma(self) -> float:
        return max((c.gamma for c in self.candidates), default=0.0)


class Explorer(Protocol):
    """Anything that proposes candidates for labelling."""

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int, folder: Path) -> ExplorationResult:
        """Candidates for ``iteration``; MD and other files go into ``folder``."""
        ...


class StandardExplorer:
    """Rattle, strain and LAMMPS MD with the current potential; reproducible per iteration
    (random streams and MD velocity seeds derive from ``random_seed`` and the iteration)."""

    def __init__(self, settings: ExplorationConfig, engine: LammpsEngine, md_workers: int = 1,
                 show_progress: bool = True) -> None:
        self.settings = settings
        self.engine = engine
        self.md_workers = md_workers
        self.show_progress = show_progress

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int, folder: Path) -> ExplorationResult:
        rng = np.random.default_rng([self.settings.random_seed, iteration])
        if potential is None:
            return ExplorationResult(self.initial(starts, rng))
        starts = [(origin, equilibrate(atoms, potential, self.settings.gamma_collect))
                  for origin, atoms in starts]
        per_start = max(2, -(-self.settings.labels_per_iteration // len(starts)))
        result = ExplorationResult(self.perturbations(starts, rng, per_start))
        gammas = max_gamma(potential, [c.atoms for c in result.candidates])
        for candidate, gamma in zip(result.candidates, gammas, strict=True):
            candidate.gamma = float(gamma)
        runs = self.md_runs(starts, rng)
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(),
                      disable=not self.show_progress) as progress, \
                ThreadPoolExecutor(self.md_workers) as pool:
            task = progress.add_task("exploring (LAMMPS MD)", total=len(runs))
            futures = [pool.submit(self.engine.run, atoms, potential, request, folder / name)
                       for name, _, atoms, request in runs]
            for (name, origin, _, _), future in zip(runs, futures, strict=True):
                md = future.result()
                progress.advance(task)
                result.md_runs += 1
                result.halts += md.status == "halted"
                if md.status == "failed":
                    log.warning("MD run %s failed: %s (files in %s)", name, md.error, md.folder)
                    result.md_failures.append(f"{name}: {md.error}")
                result.candidates.extend(
                    md_candidates(md, origin, self.settings.labels_per_iteration))
        return result

    def md_runs(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                ) -> list[tuple[str, str, Atoms, MDRequest]]:
        """``(folder name, origin, start, request)`` for every start at every temperature and
        pressure (NVT when no pressures are set); velocity seeds come from ``rng``."""
        s = self.settings
        pressures: list[float | None] = list(s.md_pressures_gpa) or [None]
        runs = []
        for k, (origin, atoms) in enumerate(starts):
            for temperature in s.md_temperatures:
                for pressure in pressures:
                    request = MDRequest(
                        temperature_k=temperature, steps=s.md_steps, timestep_fs=s.md_timestep_fs,
                        gamma_every=s.md_gamma_every, gamma_collect=s.gamma_collect,
                        gamma_halt=s.gamma_halt, seed=int(rng.integers(1, 2**31 - 1)),
                        pressure_gpa=pressure)
                    name = re.sub(r"[^\w.-]", "_", f"{k:02d}_{origin}_{temperature:g}K" + (
                        "" if pressure is None else f"_{pressure:g}GPa"))
                    runs.append((name, origin, atoms, request))
        return runs

    def initial(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator) -> list[Candidate]:
        """``seed_labels`` structures before any potential exists: each start at each of the
        ``SEED_SCALES`` as is and rattled (an equation of state with its neighbourhood), then
        strained copies of randomly scaled starts."""
        n = self.settings.seed_labels
        out = []
        for scale in SEED_SCALES:
            for origin, atoms in starts:
                provenance = {"origin": origin, "scale": scale}
                scaled = _scaled(atoms, scale)
                out.append(Candidate(scaled, {"generator": "seed", **provenance}))
                out.append(Candidate(self.rattle(scaled, rng), {"generator": "rattle", **provenance}))
        out = out[:n]
        scaled = [(origin, _scaled(atoms, float(rng.choice(SEED_SCALES))))
                  for origin, atoms in starts]
        per_start = -(-(n - len(out)) // max(1, len(starts)))
        return (out + self.perturbations(scaled, rng, per_start))[:n]

    def perturbations(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                      per_start: int) -> list[Candidate]:
        """Alternating rattled and strained (plus rattled) copies of every start."""
        out = []
        for k in range(per_start):
            for origin, atoms in starts:
                if k % 2 == 0:
                    out.append(Candidate(self.rattle(atoms, rng),
                                         {"generator": "rattle", "origin": origin}))
                else:
                    strained, strain = self.strain(atoms, rng)
                    out.append(Candidate(strained, {"generator": "strain", "origin": origin,
                                                    "strain": np.round(strain, 5).tolist()}))
        return out

    def rattle(self, atoms: Atoms, rng: np.random.Generator) -> Atoms:
        """Copy with Gaussian displacements of ``rattle_stdev`` Angstrom."""
        out = bare(atoms)
        out.positions += rng.normal(0.0, self.settings.rattle_stdev, out.positions.shape)
        return out

    def strain(self, atoms: Atoms, rng: np.random.Generator) -> tuple[Atoms, np.ndarray]:
        """Copy under a random symmetric strain (components up to ``max_strain``), rattled
        by half the usual amplitude; returns the structure and the strain tensor."""
        eps = rng.uniform(-self.settings.max_strain, self.settings.max_strain, (3, 3))
        eps = (eps + eps.T) / 2
        out = bare(atoms)
        out.set_cell(out.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        out.positions += rng.normal(0.0, self.settings.rattle_stdev / 2, out.positions.shape)
        return out, eps

def md_candidates(md: MDResult, origin: str, keep: int) -> list[Candidate]:
    """Candidates from one MD run: the ``keep`` extrapolative frames of highest gamma (the dump
    is streamed; no more than ``keep`` frames are held) and the last frame. A failed run gives
    the frames written before the failure."""
    request = md.request
    provenance = {"generator": "md", "origin": origin, "temperature_K": request.temperature_k,
                  "md_status": md.status}
    if request.pressure_gpa is not None:
        provenance["pressure_GPa"] = request.pressure_gpa
    best: list[tuple[float, int, Atoms]] = []  # min-heap on gamma; steps are unique
    final = None
    try:
        for step, atoms in md.extrapolative_frames():
            item = (float(np.max(atoms.arrays["gamma"])), step, atoms)
            (heapq.heappush if len(best) < keep else heapq.heappushpop)(best, item)
        if md.status != "failed":
            final = md.final_frame()
    except ParseError as err:  # a dump cut short by a crash: keep the frames before it
        log.warning("MD run in %s: %s", md.folder, err)
    frames = sorted(best, key=lambda item: item[1])
    if final is not None and final[0] not in {step for _, step, _ in frames}:
        frames.append((float(np.max(final[1].arrays["gamma"])), *final))
    return [Candidate(bare(atoms), {**provenance, "md_step": step}, gamma)
            for gamma, step, atoms in frames]


def equilibrate(atoms: Atoms, potential: Potential, gamma_limit: float) -> Atoms:
    """Copy of ``atoms`` isotropically scaled to the potential's lowest energy among the
    ``EQUILIBRATION_SCALES`` (linear factors) where it does not extrapolate (gamma at most
    ``gamma_limit``); unscaled if it extrapolates everywhere."""
    calc = potential.calculator(with_gamma=True)
    best, best_energy = 1.0, np.inf
    for scale in EQUILIBRATION_SCALES:
        trial = _scaled(atoms, scale)
        trial.calc = calc
        energy = trial.get_potential_energy()
        if np.max(calc.results["gamma"]) <= gamma_limit and energy < best_energy:
            best, best_energy = float(scale), energy
    return _scaled(atoms, best)


def _scaled(atoms: Atoms, scale: float) -> Atoms:
    out = bare(atoms)
    out.set_cell(out.cell.array * scale, scale_atoms=True)
    return out


