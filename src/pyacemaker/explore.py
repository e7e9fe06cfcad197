"""Exploration: candidate structures for labelling, behind one interface.

``Explorer.explore`` takes the starting structures and the current potential (``None`` before
the first fit) and returns candidates with provenance and extrapolation grade. The standard
explorer perturbs the starts (rattle, strain) and runs LAMMPS MD with the current ACE + ZBL
potential, which dumps frames whose gamma exceeds the collect threshold and halts above the
halt threshold.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from ase import Atoms

from pyacemaker.candidates import Candidate, MDOutcome, MDRun, run_md
from pyacemaker.composition import reduce_counts
from pyacemaker.config import DynamicsConfig, ExplorationConfig, SeedsConfig
from pyacemaker.dispatch import Dispatcher, Task, store_files
from pyacemaker.dynamics.md import MDRequest
from pyacemaker.errors import CalculationFailed
from pyacemaker.kmc import KMCOutcome, KMCRun, run_kmc
from pyacemaker.records import PolicyDecision, ProcessRecord
from pyacemaker.structures import bare, defect_atoms
from pyacemaker.structures.seeds import fit_cell, random_crystals
from pyacemaker.structures.strategies import (
    antisite,
    interstitial,
    physical,
    rattle,
    slab,
    strain,
    swaps,
    vacancy,
)
from pyacemaker.training.potential import Potential
from pyacemaker.training.selection import max_gamma
from pyacemaker.validation.relax import relaxed

log = logging.getLogger(__name__)

SEED_SCALES = (1.0, 0.95, 1.05, 0.9, 1.1, 0.85)  # linear scales of the seeds, most likely
# first: prototypes scaled from covalent radii can miss the lattice constant by ~10%; later
# iterations start from the fitted potential's own minimum (``equilibrate``)
EQUILIBRATION_SCALES = np.linspace(0.85, 1.10, 11)  # scan for the potential's best volume
RELAX_FMAX, RELAX_STEPS = 0.02, 150  # eV/Angstrom, BFGS steps: then the start's own relaxation
SWAP_STEPS = 50  # Monte Carlo exchange attempts per swapped structure
# Defect and surface cells made in an iteration that also get an MD run (one per kind first):
# static cells never show thermal defects and surfaces (benchmarks/data_efficiency.py: at the
# hottest temperature the runs melted slabs and hurt the fit; at the middle one, from relaxed
# cells, they gave thermal vacancies and surfaces at no loss).
DEFECT_MD_KINDS = ("vacancy", "interstitial", "antisite", "surface")
DEFECT_MD_RUNS = 3


@dataclass
class ExplorationResult:
    """Candidates of one iteration and what the MD runs saw."""

    candidates: list[Candidate] = field(default_factory=list)
    md_runs: int = 0
    halts: int = 0
    md_failures: list[str] = field(default_factory=list)
    kmc_runs: int = 0
    kmc_halts: int = 0
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def max_gamma(self) -> float:
        return max((c.gamma for c in self.candidates), default=0.0)


class Explorer(Protocol):
    """Anything that proposes candidates for labelling."""

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int, folder: Path, decision: PolicyDecision | None = None,
                ) -> ExplorationResult:
        """Candidates for ``iteration`` following the policy's ``decision`` (``None`` before
        the first fit); MD and other files go into ``folder``."""
        ...


class StandardExplorer:
    """The policy's strategies (rattle, strain, defects, surfaces, swaps) and LAMMPS MD with the
    current potential; reproducible per iteration (random streams and MD velocity seeds derive
    from ``random_seed`` and the iteration)."""

    def __init__(self, settings: ExplorationConfig, dynamics: DynamicsConfig,
                 dispatcher: Dispatcher, seeds: SeedsConfig | None = None) -> None:
        self.settings = settings
        self.seeds = seeds or SeedsConfig()
        self.dynamics = dynamics
        self.dispatcher = dispatcher

    def explore(self, starts: list[tuple[str, Atoms]], potential: Potential | None,
                iteration: int, folder: Path, decision: PolicyDecision | None = None,
                ) -> ExplorationResult:
        rng = np.random.default_rng([self.settings.random_seed, iteration])
        if potential is None or decision is None:
            return ExplorationResult(self.initial(starts, rng))
        starts = [(origin, equilibrate(atoms, potential, decision.gamma_collect))
                  for origin, atoms in starts]
        per_start = max(2, -(-self.settings.labels_per_iteration // len(starts)))
        result = ExplorationResult(self.strategies(starts, rng, per_start, decision, potential))
        gammas = max_gamma(potential, [c.atoms for c in result.candidates])
        for candidate, gamma in zip(result.candidates, gammas, strict=True):
            candidate.gamma = float(gamma)
        runs = self.md_runs(starts, rng, decision)
        defect_runs, halted = self.defect_md_runs(result.candidates, rng, decision, potential)
        runs += defect_runs
        result.candidates += halted
        files = potential.files()
        tasks = [Task(k, run_md, (self.dynamics.lammps_command, self.dynamics.timeout_s, files,
                                  run, self.settings.labels_per_iteration, self.seeds.max_atoms,
                                  potential.cutoff)) for k, run in enumerate(runs)]
        outcomes: dict[int, MDOutcome] = {}

        def keep(k: int, outcome: MDOutcome) -> None:
            outcomes[k] = outcome
            store_files(folder / outcome.name, outcome.files)

        self.dispatcher.run("md", tasks, keep, "exploring (LAMMPS MD)")
        for k in range(len(runs)):  # in run order, however the runs finished
            md = outcomes[k]
            result.md_runs += 1
            result.halts += md.status == "halted"
            if md.status == "failed":
                log.warning("MD run %s failed: %s (its log in %s)", md.name, md.error,
                            folder / md.name)
                result.md_failures.append(f"{md.name}: {md.error}")
            result.candidates.extend(md.candidates)
        if decision.kmc:
            self.rare_events(starts, rng, decision, files, result)
        return result

    def rare_events(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                    decision: PolicyDecision, files: dict[str, bytes],
                    result: ExplorationResult) -> None:
        """kMC runs (saddle searches, NEB, harmonic rates) from defects of the starts, at the
        decision's middle temperature; their processes and candidates join ``result``."""
        settings = self.settings.rare_events
        temperatures = sorted(decision.temperatures_k)
        temperature = temperatures[(len(temperatures) - 1) // 2]
        runs = []
        for k in range(settings.runs):
            origin, atoms = starts[k % len(starts)]
            made = None if len(defect_atoms(atoms)) else vacancy(atoms, rng)
            start = atoms if made is None else made[0]
            runs.append(KMCRun(
                folder_name(f"kmc{k:02d}_{origin}_{temperature:g}K"), origin, start,
                temperature, settings.kmc_steps, settings.searches, decision.gamma_collect,
                decision.gamma_halt, settings.prefactor_hz, settings.neb_images,
                int(rng.integers(1, 2**31 - 1)), settings.engine, settings.eon_command))
        outcomes: dict[int, KMCOutcome] = {}
        self.dispatcher.run("search", [Task(k, run_kmc, (files, run)) for k, run in enumerate(runs)],
                            outcomes.__setitem__, "exploring (saddle searches, kMC)")
        for k in range(len(runs)):
            kmc = outcomes[k]
            log.info("kMC run %s: %s after %d steps (%.3g s simulated, %d processes, %d force "
                     "calls)%s", kmc.name, kmc.status, kmc.steps, kmc.time_s,
                     len(kmc.processes), kmc.force_calls, f": {kmc.error}" if kmc.error else "")
            result.kmc_runs += 1
            result.kmc_halts += kmc.status == "halted"
            result.processes += kmc.processes
            result.candidates += kmc.candidates

    def md_runs(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                decision: PolicyDecision) -> list[MDRun]:
        """Every start at every temperature and pressure of the decision (NVT when it has no
        pressures); velocity seeds from ``rng``."""
        pressures: list[float | None] = list(decision.pressures_gpa) or [None]
        runs = []
        for k, (origin, atoms) in enumerate(starts):
            for temperature in decision.temperatures_k:
                for pressure in pressures:
                    name = f"{k:02d}_{origin}_{temperature:g}K" + (
                        "" if pressure is None else f"_{pressure:g}GPa")
                    runs.append(self.md_run(name, origin, atoms, temperature, pressure, rng,
                                            decision))
        return runs

    def defect_md_runs(self, candidates: list[Candidate], rng: np.random.Generator,
                       decision: PolicyDecision, potential: Potential,
                       ) -> tuple[list[MDRun], list[Candidate]]:
        """NVT MD at the decision's middle temperature (its hottest melts surfaces) from up to
        ``DEFECT_MD_RUNS`` of this iteration's defect and surface cells (one of each kind
        first), each relaxed by the potential first. A relaxation that halts on gamma
        (``relax_until_halt``) gives its end as a candidate of the cell's class instead of a
        run: the next potential relaxes further along the same path, until the defect's own
        minimum and its thermal neighbourhood are reached. The frames keep the cell's class
        (``generator``)."""
        temperatures = sorted(decision.temperatures_k)
        temperature = temperatures[(len(temperatures) - 1) // 2]
        runs: dict[str, MDRun] = {}
        halted: list[Candidate] = []
        for candidate in candidates:
            kind = str(candidate.provenance.get("generator"))
            if kind not in DEFECT_MD_KINDS or kind in runs or len(runs) == DEFECT_MD_RUNS:
                continue
            relaxation = relax_until_halt(candidate.atoms, potential, decision.gamma_halt)
            if relaxation is None:
                continue
            if relaxation.halted:
                if relaxation.steps > 0:  # step 0 is the candidate itself
                    halted.append(Candidate(relaxation.atoms, {
                        **candidate.provenance, "relaxation_steps": relaxation.steps},
                        relaxation.gamma))
                continue
            runs[kind] = self.md_run(
                f"defect{len(runs):02d}_{kind}_{temperature:g}K",
                str(candidate.provenance.get("origin", kind)), relaxation.atoms, temperature,
                None, rng, decision, kind)
        return list(runs.values()), halted

    def md_run(self, name: str, origin: str, atoms: Atoms, temperature: float,
               pressure: float | None, rng: np.random.Generator, decision: PolicyDecision,
               generator: str = "md") -> MDRun:
        s = self.settings
        request = MDRequest(
            temperature_k=temperature, steps=s.md_steps, timestep_fs=s.md_timestep_fs,
            gamma_every=s.md_gamma_every, gamma_collect=decision.gamma_collect,
            gamma_halt=decision.gamma_halt, seed=int(rng.integers(1, 2**31 - 1)),
            pressure_gpa=pressure)
        return MDRun(folder_name(name), origin, atoms, request, generator)

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
                rattled, how = rattle(scaled, rng, self.settings.rattle_stdev)
                out.append(Candidate(rattled, {**how, **provenance}))
        out = out[:n]
        scaled = [(origin, _scaled(atoms, float(rng.choice(SEED_SCALES))))
                  for origin, atoms in starts]
        per_start = -(-(n - len(out)) // max(1, len(starts)))
        return (out + self.perturbations(scaled, rng, per_start))[:n]

    def perturbations(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                      per_start: int) -> list[Candidate]:
        """Alternating rattled and strained (plus rattled) copies of every start."""
        s = self.settings
        out = []
        for k in range(per_start):
            for origin, atoms in starts:
                made = (rattle(atoms, rng, s.rattle_stdev) if k % 2 == 0
                        else strain(atoms, rng, s.max_strain, s.rattle_stdev))
                out.append(Candidate(made[0], {**made[1], "origin": origin}))
        return out

    def random_crystal(self, atoms: Atoms, rng: np.random.Generator,
                       ) -> tuple[Atoms, dict[str, Any]] | None:
        """A random symmetric crystal (pyxtal) of the start's composition at the start's volume
        per atom, in a cell fitted like the seeds (``seeds.min_cell_width``,
        ``seeds.max_atoms``); ``None`` if none is found. Scaled to bond lengths alone, pyxtal's
        cells can be open enough to be nearly isolated atoms (Cu: 63-79 Angstrom^3 per atom
        against 12, 2.4 eV/atom above fcc; one such label made a linear fit's held-out force
        error 7 times larger)."""
        counts = reduce_counts(Counter(atoms.get_chemical_symbols()))
        found = random_crystals(counts, 1, int(rng.integers(2**31)))
        if not found:
            return None
        origin, crystal = found[0]
        dense = atoms.get_volume() / len(atoms) * len(crystal) / crystal.get_volume()
        crystal.set_cell(crystal.cell.array * dense ** (1 / 3), scale_atoms=True)
        cell = fit_cell(origin, crystal, self.seeds, allow_primitive=True)
        return cell, {"generator": "random", "space_group": origin.removeprefix("random:")}

    def strategies(self, starts: list[tuple[str, Atoms]], rng: np.random.Generator,
                   per_start: int, decision: PolicyDecision, potential: Potential,
                   ) -> list[Candidate]:
        """``per_start`` structures from every start, each by a strategy drawn with the
        decision's ratios; a strategy that does not apply, or gives atoms closer than
        physical, is replaced by a rattle."""
        s = self.settings
        names = sorted(decision.ratios)
        weights = np.array([decision.ratios[n] for n in names])
        calc = potential.calculator(with_gamma=False)

        def energy(atoms: Atoms) -> float:
            atoms = bare(atoms)
            atoms.calc = calc
            return float(atoms.get_potential_energy())

        hottest = max(decision.temperatures_k, default=300.0)
        makers: dict[str, Callable[[Atoms], Any]] = {
            "rattle": lambda a: rattle(a, rng, s.rattle_stdev),
            "strain": lambda a: strain(a, rng, decision.max_strain, s.rattle_stdev),
            "vacancy": lambda a: vacancy(a, rng, s.rattle_stdev / 2),
            "interstitial": lambda a: interstitial(a, rng, s.rattle_stdev / 2),
            "antisite": lambda a: antisite(a, rng, s.rattle_stdev / 2),
            "surface": lambda a: slab(a, rng, self.seeds.max_atoms, self.seeds.min_cell_width,
                                     s.rattle_stdev / 2),
            "swap": lambda a: swaps(a, rng, energy, hottest, SWAP_STEPS),
            "random": lambda a: self.random_crystal(a, rng),
        }
        out = []
        for _ in range(per_start):
            for origin, atoms in starts:
                name = str(rng.choice(names, p=weights / weights.sum()))
                made = makers[name](atoms)
                if made is None or not physical(made[0]):
                    made = rattle(atoms, rng, s.rattle_stdev)
                out.append(Candidate(made[0], {**made[1], "origin": origin}))
        return out


def equilibrate(atoms: Atoms, potential: Potential, gamma_limit: float) -> Atoms:
    """Copy of ``atoms`` at the potential's minimum: isotropically scaled to the lowest energy
    among the ``EQUILIBRATION_SCALES`` (linear factors) where it does not extrapolate (gamma at
    most ``gamma_limit``), then relaxed in cell and ions (``RELAX_STEPS`` at most), so that
    rattles, strains and MD sample the neighbourhood of the real minimum, shape and internal
    coordinates included. The relaxation is kept only when it stays within ``gamma_limit``;
    the start stays unscaled if the potential extrapolates at every scale."""
    calc = potential.calculator(with_gamma=True)
    best, best_energy = 1.0, np.inf
    for scale in EQUILIBRATION_SCALES:
        trial = _scaled(atoms, scale)
        trial.calc = calc
        energy = trial.get_potential_energy()
        if np.max(calc.results["gamma"]) <= gamma_limit and energy < best_energy:
            best, best_energy = float(scale), energy
    scaled = _scaled(atoms, best)
    if not np.isfinite(best_energy):
        return scaled
    return relaxed_within(scaled, potential, gamma_limit, cell=True) or scaled


@dataclass(frozen=True)
class Relaxation:
    """Where a relaxation with the potential ended, after ``steps`` force evaluations: at its
    minimum, or ``halted`` where gamma is above the limit."""

    atoms: Atoms
    gamma: float
    steps: int
    halted: bool


def relax_until_halt(atoms: Atoms, potential: Potential, gamma_limit: float,
                     cell: bool = False) -> Relaxation | None:
    """Relax ``atoms`` with the potential (ions, and the cell when ``cell``; ``RELAX_STEPS`` at
    most) until it converges or, like MD's halt, gamma passes ``gamma_limit``: the structure
    there is where the potential stops knowing the path. A start already beyond the limit (a
    generated defect: an interstitial squeezed into a void) relaxes until it enters the known
    region, and halts only when it leaves it again; one that never enters ends at the
    potential's minimum, still ``halted``. ``None`` when the relaxation runs away."""
    calc = potential.calculator(with_gamma=True)
    evaluations, entered = 0, False

    def left_known_region() -> bool:
        nonlocal evaluations, entered
        evaluations += 1
        inside = float(np.max(calc.results["gamma"])) <= gamma_limit
        entered = entered or inside
        return entered and not inside

    try:
        end = relaxed(atoms, calc, cell=cell, fmax=RELAX_FMAX, max_steps=RELAX_STEPS,
                      stop=left_known_region)
    except CalculationFailed:
        return None
    end.get_potential_energy()
    gamma = float(np.max(calc.results["gamma"]))
    return Relaxation(bare(end), gamma, evaluations - 1, gamma > gamma_limit)


def relaxed_within(atoms: Atoms, potential: Potential, gamma_limit: float,
                   cell: bool = False) -> Atoms | None:
    """``atoms`` relaxed with the potential, or ``None`` when the relaxation runs away or
    passes ``gamma_limit`` (there the potential's minimum means nothing)."""
    relaxation = relax_until_halt(atoms, potential, gamma_limit, cell)
    return None if relaxation is None or relaxation.halted else relaxation.atoms


def folder_name(name: str) -> str:
    """``name`` with every character but letters, digits, '.', '-' and '_' replaced by '_', and
    leading dots too: one folder inside its parent, never ``..`` or hidden."""
    safe = re.sub(r"[^\w.-]", "_", name)
    return "_" * (len(safe) - len(safe.lstrip("."))) + safe.lstrip(".") or "_"


def _scaled(atoms: Atoms, scale: float) -> Atoms:
    out = bare(atoms)
    out.set_cell(out.cell.array * scale, scale_atoms=True)
    return out


