"""Exploration: candidate structures for labelling, behind one interface.

``Explorer.explore`` takes the starting structures and the current potential (``None`` before
the first fit) and returns candidates with provenance and extrapolation grade. The ASE
implementation perturbs the starts (rattle, strain) and runs short Langevin MD with the current
ACE + ZBL potential, stopping a run when gamma exceeds the halt threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from rich.progress import MofNCompleteColumn, Progress

from pyacemaker.config import ExplorationConfig
from pyacemaker.structures import bare
from pyacemaker.training.potential import Potential
from pyacemaker.training.selection import max_gamma

LANGEVIN_FRICTION = 0.01  # 1/fs
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

    @property
    def max_gamma(self) -> float:
        return max((c.gamma for c in self.candidates), default=0.0)


class Explorer(Protocol):
    """Anything that proposes candidates for labelling."""

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int) -> ExplorationResult: ...


class AseExplorer:
    """Rattle, strain and ASE Langevin MD with the current potential; reproducible per
    iteration (the random stream is seeded by ``random_seed`` and the iteration)."""

    def __init__(self, settings: ExplorationConfig, show_progress: bool = True) -> None:
        self.settings = settings
        self.show_progress = show_progress

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int) -> ExplorationResult:
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
        runs = [(origin, atoms, t) for origin, atoms in starts for t in self.settings.md_temperatures]
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(),
                      disable=not self.show_progress) as progress:
            for origin, atoms, temperature in progress.track(runs, description="exploring (MD)"):
                frames, halted = self.md(atoms, origin, potential, temperature, rng)
                result.candidates.extend(frames)
                result.md_runs += 1
                result.halts += halted
        return result

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

    def md(self, atoms: Atoms, origin: str, potential: Potential, temperature: float,
           rng: np.random.Generator) -> tuple[list[Candidate], bool]:
        """Langevin NVT at ``temperature`` (K); a snapshot every ``md_snapshot_every`` steps,
        stopping early (halted) when gamma exceeds ``gamma_halt`` or forces turn non-finite
        (such a frame is dropped)."""
        s = self.settings
        system = bare(atoms)
        system.calc = potential.calculator(with_gamma=True)
        thermalize_momenta(system, temperature_K=temperature, rng=rng)
        dynamics = Langevin(system, s.md_timestep_fs * units.fs, temperature_K=temperature,
                            friction=LANGEVIN_FRICTION / units.fs, fixcm=False, rng=rng)
        frames = []
        for step in range(1, s.md_steps + 1):
            dynamics.run(1)
            gamma = float(np.max(system.calc.results["gamma"]))
            finite = np.all(np.isfinite(system.get_forces()))
            halted = gamma > s.gamma_halt or not finite
            if finite and (step % s.md_snapshot_every == 0 or halted):
                frames.append(Candidate(
                    bare(system),
                    {"generator": "md", "origin": origin, "temperature_K": temperature,
                     "md_step": step, "halted": halted},
                    gamma,
                ))
            if halted:
                return frames, True
        return frames, False


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


