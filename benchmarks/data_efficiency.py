"""How many reference calculations active learning saves: the loop against random sampling and
plain MaxVol on a brute-force pool, on EMT Cu and on TiO2 labelled by CHGNet.

Per system:

- a pool built the way a brute-force user would: mostly MD near equilibrium at a few
  temperatures, rare classes scarce (hot and compressed frames, vacancies, interstitials or
  surfaces), and a test set of the same classes from independent trajectories;
- the floor: the held-out force RMSE of a fit on the whole pool;
- three ways to spend labels: ``random`` (random subsets of the pool), ``maxvol`` (pyace's
  D-optimal selection on the pool, in batches against the structures chosen so far, filled by
  the largest extrapolation grade) and ``loop`` (our explorer and selection, a real run on the
  same oracle; its labels are its own structures, not the pool's);
- every subset is fitted with the same linear ACE basis (energies and forces, the trainer's
  kappa and Ridge alpha, no stresses) and tested on the same test set, under three weightings:
  ``stratified`` (every class counts the same), ``pool`` (classes weighted as in the pool) and
  ``md`` (near-equilibrium MD only).

The pools hold one phase (fcc Cu, rutile), so the loop is told that phase too
(``seeds.prototypes``), as a user who knows it would; with every prototype (fcc, bcc and hcp
Cu) it spreads its labels over phases the test never asks about.

Prints, per system and weighting, the labels each way needs to reach 2x, 1.5x and 1.2x the
floor (median and range over seeds) and the worst-class force RMSE at the loop's final label
count; writes ``results.json`` and ``learning_curves.png`` to the workdir. Pools and loop runs
are kept there, so a second call only refits.

    .venv/bin/python benchmarks/data_efficiency.py [--only cu|tio2] [--seeds 5] [--loop-seeds 2]
        [--workdir runs/data_efficiency] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc111
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.spacegroup import crystal
from rich.console import Console
from rich.table import Table

from pyacemaker.config import TargetsConfig, TrainerConfig, config_from_dict, default_zbl_range
from pyacemaker.dataset import Dataset
from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import resolve
from pyacemaker.training.baseline import ZBLCalculator
from pyacemaker.training.basis import basis_config, choose_basis, describe
from pyacemaker.training.linear import delta_dataframe, reference_energies, sample_weights
from pyacemaker.training.metrics import within_force_limit

ROOT = Path(__file__).resolve().parents[1]
WEIGHTINGS = ("stratified", "pool", "md")
TARGETS = (2.0, 1.5, 1.2)  # force RMSE over the floor
NEAR_EQUILIBRIUM = "md"
CHUNK_FRAMES = 50  # frames per MD run of the pool


# ---------------------------------------------------------------- pools


@dataclass(frozen=True)
class Trajectory:
    """One MD run whose frames become labelled structures of ``kind``."""

    kind: str
    start: Callable[[], Atoms]
    temperature: float
    frames: int
    seed: int


@dataclass(frozen=True)
class System:
    """A benchmark system: its pool and test trajectories, oracle and loop settings."""

    name: str
    elements: list[str]
    calculator: Callable[[], object]
    pool: list[Trajectory]
    test: list[Trajectory]
    loop: dict
    wide: list[Trajectory] = field(default_factory=list)  # MD of a cell wider than twice the cutoff
    max_functions: int | None = None  # trainer.max_functions_per_element (None: the product's)
    timestep_fs: float = 2.0
    every: int = 10  # MD steps between stored frames


def emt():
    from ase.calculators.emt import EMT

    return EMT()


def chgnet():
    from pyacemaker.oracle.calculators import chgnet_calculator

    return chgnet_calculator("0.3.0", {})


def copper_bulk(scale: float = 1.0) -> Atoms:
    return bulk("Cu", "fcc", a=3.61 * scale, cubic=True) * (2, 2, 2)


def copper_bulk_wide() -> Atoms:
    """256 atoms, 14.4 Å wide: more than twice any cutoff the trainer tries for Cu."""
    return bulk("Cu", "fcc", a=3.61, cubic=True) * (4, 4, 4)


def copper_vacancy() -> Atoms:
    atoms = copper_bulk()
    del atoms[0]
    return atoms


def copper_interstitial() -> Atoms:
    atoms = copper_bulk()
    atoms.append("Cu")
    atoms.positions[-1] = (1.805, 0.0, 0.0)  # octahedral site
    return atoms


def copper_surface() -> Atoms:
    atoms = fcc111("Cu", size=(2, 2, 6), a=3.61, vacuum=6.0)
    atoms.pbc = True  # pyace needs fully periodic cells; the vacuum makes it a slab
    return atoms


def rutile(scale: float = 1.0, repeat: tuple[int, int, int] = (2, 2, 2)) -> Atoms:
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                   cellpar=[4.65 * scale, 4.65 * scale, 2.97 * scale, 90, 90, 90]) * repeat


def rutile_wide() -> Atoms:
    """270 atoms (3 x 3 x 5 cells, 13.9-14.9 Å wide): more than twice the 6.4 Å default cutoff."""
    return rutile(repeat=(3, 3, 5))


def rutile_vacancy() -> Atoms:
    atoms = rutile()
    del atoms[[a.index for a in atoms if a.symbol == "O"][0]]
    return atoms


def rutile_surface() -> Atoms:
    from ase.build import surface

    cell = crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                   cellpar=[4.65, 4.65, 2.97, 90, 90, 90])
    atoms = surface(cell, (1, 1, 0), 3, vacuum=6.0) * (1, 2, 1)
    atoms.pbc = True
    return atoms


def trajectories(spec: list[tuple[str, Callable[[], Atoms], float, int]], seed: int, scale: float,
                 ) -> list[Trajectory]:
    """One trajectory per ``(kind, start, temperature, frames)``, split into independent runs
    of at most ``CHUNK_FRAMES`` frames so that two workers share the MD evenly."""
    out = []
    for k, (kind, start, t, frames) in enumerate(spec):
        n = max(2, round(frames * scale))
        parts = -(-n // CHUNK_FRAMES)
        out += [Trajectory(kind, start, t, n // parts + (p < n % parts), seed + k + 1000 * p)
                for p in range(parts)]
    return out


def copper(scale: float) -> System:
    rare = [("hot", copper_bulk, 1700, 12), ("compressed", partial(copper_bulk, 0.96), 600, 12),
            ("vacancy", copper_vacancy, 900, 12), ("interstitial", copper_interstitial, 600, 12),
            ("surface", copper_surface, 600, 12)]
    pool = [("md", copper_bulk, t, 120) for t in (300, 600, 900)] + rare
    test = [("md", copper_bulk, t, 12) for t in (300, 600, 900)] + [(k, s, t, 6) for k, s, t, _ in rare]
    loop = {"composition": "Cu", "oracle": {"engine": "emt"}, "seeds": {"prototypes": ["fcc"]},
            "budget": {"max_iterations": 5, "max_labels": 120},
            "exploration": {"seed_labels": 30, "labels_per_iteration": 20}}
    wide = [Trajectory("wide", partial(copper_bulk_wide), 600, max(2, round(8 * scale)), 4242)]
    return System("EMT Cu", ["Cu"], emt, trajectories(pool, 100, scale),
                  trajectories(test, 900, scale), loop, wide)


def tiny_copper() -> System:
    """A tenth of the Cu pool, bases of at most 20 functions and a one-iteration loop of 16
    labels, no wide cell."""
    system = copper(0.1)
    loop = {**system.loop, "budget": {"max_iterations": 1, "max_labels": 16},
            "exploration": {"seed_labels": 10, "labels_per_iteration": 6},
            "trainer": {"max_functions_per_element": 20}}
    return System(**{**system.__dict__, "loop": loop, "wide": [], "max_functions": 20})


def titania(scale: float) -> System:
    rare = [("hot", rutile, 2200, 10), ("compressed", partial(rutile, 0.97), 600, 10),
            ("vacancy", rutile_vacancy, 900, 10), ("surface", rutile_surface, 600, 10)]
    pool = [("md", rutile, t, 80) for t in (300, 600, 900)] + rare
    test = [("md", rutile, t, 10) for t in (300, 600, 900)] + [(k, s, t, 5) for k, s, t, _ in rare]
    loop = {"composition": "TiO2", "oracle": {"engine": "chgnet"}, "seeds": {"prototypes": ["rutile"]},
            "budget": {"max_iterations": 4, "max_labels": 120}}
    wide = [Trajectory("wide", rutile_wide, 600, max(2, round(8 * scale)), 4242)]
    return System("TiO2 (CHGNet)", ["O", "Ti"], chgnet, trajectories(pool, 200, scale),
                  trajectories(test, 800, scale), loop, wide, every=5)


def md_frames(system: System, trajectory: Trajectory) -> list[Atoms]:
    """Frames of Langevin MD (the system's oracle) with their energies, forces and stresses;
    the first ``2 * every`` steps are discarded as equilibration."""
    atoms = trajectory.start()
    atoms.calc = system.calculator()
    rng = np.random.default_rng(trajectory.seed)
    thermalize_momenta(atoms, trajectory.temperature, rng=rng)
    dynamics = Langevin(atoms, system.timestep_fs * units.fs, temperature_K=trajectory.temperature,
                        friction=0.02, fixcm=False, rng=rng)
    dynamics.run(2 * system.every)
    frames = []
    for _ in range(trajectory.frames):
        dynamics.run(system.every)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(),
                                           forces=atoms.get_forces(), stress=atoms.get_stress())
        frame.info["class"] = trajectory.kind
        frames.append(frame)
    return frames


def labelled_pool(system: System, path: Path, which: str, console: Console) -> list[Atoms]:
    """The pool or test structures of ``system``, from ``path`` (ase.db) or made and stored there."""
    if path.is_file():
        return [row.toatoms(add_additional_information=True) for row in connect(path).select()]
    specs = {"pool": system.pool, "test": system.test, "wide": system.wide}[which]
    out: list[Atoms] = []
    with console.status(f"{system.name}: MD for the {which} ({len(specs)} trajectories)"), \
            ProcessPoolExecutor(2) as workers:
        longest_first = sorted(specs, key=lambda t: -t.frames)
        for frames in workers.map(md_frames, [system] * len(specs), longest_first):
            out += frames
    staging = path.with_suffix(".partial.db")
    staging.unlink(missing_ok=True)
    with connect(staging) as db:
        for atoms in out:
            db.write(atoms, key_value_pairs={"kind": atoms.info["class"]})
    staging.rename(path)
    return labelled_pool(system, path, which, console)


def kind_of(atoms: Atoms) -> str:
    return atoms.info.get("class") or atoms.info.get("key_value_pairs", {}).get("kind", "")


# ---------------------------------------------------------------- linear fits on cached rows


@dataclass
class Rows:
    """Linear-ACE design rows and targets (reference minus ZBL) of a list of structures."""

    structures: list[Atoms]
    energy: np.ndarray  # (n, m): per-atom energy rows
    forces: list[np.ndarray]  # per structure (3 n_atoms, m)
    delta_energy: np.ndarray  # (n,) eV per structure
    delta_forces: list[np.ndarray]  # per structure (3 n_atoms,)
    counts: np.ndarray = field(init=False)  # (n, n_elements)

    def __post_init__(self) -> None:
        elements = sorted({s for a in self.structures for s in a.get_chemical_symbols()})
        self.counts = np.array([[a.get_chemical_symbols().count(e) for e in elements]
                                for a in self.structures], float)


def design_rows(structures: list[Atoms], bconf, baseline: ZBLCalculator) -> Rows:
    """pyace's design matrix of ``structures`` split per structure (fixed basis ``bconf``)."""
    from pyace.linearacefit import LinearACEDataset

    elements = sorted(baseline.elements)
    df, _ = delta_dataframe(structures, baseline, references={e: 0.0 for e in elements})
    dataset = LinearACEDataset(bconf, df)
    dataset.construct_design_matrix(max_workers=2)
    matrix, target = dataset.get_design_matrix(), dataset.get_target_vector()
    n = len(structures)
    sizes = np.array([3 * len(a) for a in structures])
    bounds = n + np.concatenate([[0], np.cumsum(sizes)])
    sizes_n = np.array([len(a) for a in structures])
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    return Rows(structures, matrix[:n].copy(), [matrix[a:b].copy() for a, b in spans],
                target[:n] * sizes_n, [target[a:b].copy() for a, b in spans])


def fit(rows: Rows, chosen: list[int], settings: TrainerConfig) -> np.ndarray:
    """Coefficients of the trainer's weighted Ridge fit (energies, with per-element reference
    energies fitted like the trainer's, and forces) of the ``chosen`` structures within the
    trainer's force limit."""
    from sklearn.linear_model import Ridge

    fitted = {id(a) for a in within_force_limit([rows.structures[k] for k in chosen], settings.max_force)}
    chosen = [k for k in chosen if id(rows.structures[k]) in fitted]
    structures = [rows.structures[k] for k in chosen]
    elements = sorted({s for a in rows.structures for s in a.get_chemical_symbols()})
    usable = [k for k in chosen if rows.structures[k].info.get("energy_weight", 1.0) > 0]
    mu = reference_energies([rows.structures[k] for k in usable], rows.delta_energy[usable], elements)
    references = np.array([mu[e] for e in elements])
    atoms = rows.counts[chosen].sum(axis=1)
    energy_target = (rows.delta_energy[chosen] - rows.counts[chosen] @ references) / atoms
    design = np.vstack([rows.energy[chosen], *(rows.forces[k] for k in chosen)])
    target = np.concatenate([energy_target, *(rows.delta_forces[k] for k in chosen)])
    ridge = Ridge(alpha=settings.ridge_alpha, fit_intercept=False)
    ridge.fit(design, target, sample_weight=sample_weights(structures, settings.loss_kappa))
    return ridge.coef_


def class_errors(test: Rows, coefficients: np.ndarray) -> dict[str, float]:
    """Force mean squared error (eV/Å)^2 per class of the test structures."""
    squared, count = Counter(), Counter()
    for atoms, rows, target in zip(test.structures, test.forces, test.delta_forces, strict=False):
        error = rows @ coefficients - target
        squared[kind_of(atoms)] += float(error @ error)
        count[kind_of(atoms)] += len(error)
    return {kind: squared[kind] / count[kind] for kind in count}


def weighted(errors: dict[str, float], pool_share: dict[str, float]) -> dict[str, float]:
    """Force RMSE under each test weighting, and the worst class's."""
    return {"stratified": math.sqrt(np.mean(list(errors.values()))),
            "pool": math.sqrt(sum(pool_share[k] * e for k, e in errors.items()) /
                              sum(pool_share[k] for k in errors)),
            "md": math.sqrt(errors[NEAR_EQUILIBRIUM]),
            "worst": math.sqrt(max(errors.values()))}


# ---------------------------------------------------------------- three ways to spend labels


def random_choice(n_pool: int, grid: list[int], rng: np.random.Generator) -> dict[int, list[int]]:
    order = rng.permutation(n_pool)
    return {n: sorted(order[:n].tolist()) for n in grid}


def maxvol_choice(projections, owners, grid: list[int], rng: np.random.Generator) -> dict[int, list[int]]:
    """Pool-based MaxVol: start from ``grid[0]`` random structures, then add each batch as pyace
    selects it (the structures whose atoms enter the active set of chosen + candidates, most
    atoms first), filled by the largest extrapolation grade against that active set."""
    n_pool = 1 + max(int(o.max()) for o in owners.values())
    chosen = rng.permutation(n_pool)[: grid[0]].tolist()
    out = {grid[0]: sorted(chosen)}
    for n in grid[1:]:
        chosen += maxvol_batch(projections, owners, set(chosen), n - len(chosen))
        out[n] = sorted(chosen)
    return out


def maxvol_batch(projections, owners, chosen: set[int], n: int) -> list[int]:
    from pyace.activelearning import compute_A_active_inverse, compute_active_set, compute_extrapolation_grade

    free = {s: ~np.isin(owners[s], list(chosen)) for s in projections}
    candidates = {s: projections[s][free[s]] for s in projections}  # fancy indexing: copies
    candidate_owner = {s: owners[s][free[s]] for s in projections}
    extra = {s: projections[s][~free[s]] for s in projections}
    # compute_active_set stacks the extra rows onto its (copied) arguments
    active, picked_rows = compute_active_set({s: c.copy() for s, c in candidates.items()},
                                             dict(candidate_owner), tol=1.01,
                                             extra_A0_projections_dict=extra)
    votes = Counter(int(i) for inds in picked_rows.values() for i in inds if i >= 0)
    picked = [i for i, _ in votes.most_common()][:n]
    if len(picked) < n:
        grades = compute_extrapolation_grade(candidates, compute_A_active_inverse(active))
        gamma = Counter()
        for species, grade in grades.items():
            owner = candidate_owner[species]
            for i, g in zip(owner.astype(int), np.abs(grade).reshape(len(owner), -1).max(axis=1),
                            strict=True):
                gamma[int(i)] = max(gamma[int(i)], float(g))
        picked += [i for i, _ in gamma.most_common() if i not in picked][: n - len(picked)]
    return picked


def loop_labels(system: System, seed: int, workdir: Path, console: Console) -> dict[int, list[Atoms]]:
    """Labels of a real run of the loop (the system's oracle; the explorer and selection with
    seed ``seed``), run to its budget: labels so far after each iteration."""
    exploration = {**system.loop.get("exploration", {}), "random_seed": seed}
    raw = {**system.loop, "workdir": str(workdir), "exploration": exploration,
           "targets": {"energy_rmse_mev_per_atom": 0.01, "force_rmse_ev_per_angstrom": 0.001},
           "validation": {"every_iteration": False},
           "trainer": {**system.loop.get("trainer", {}), "kind": "linear"}}
    with console.status(f"{system.name}: the loop, seed {seed}"):
        Workflow(resolve(config_from_dict(raw)), console=Console(quiet=True), show_progress=False).run()
    labelled = [a for a in Dataset(workdir / "dataset.db", 0.1).labelled()
                if not a.info["test_only"]]  # the loop's own test labels, outside its budget
    for atoms in labelled:
        atoms.info["class"] = atoms.info["generator"]
    return {i: [a for a in labelled if a.info["iteration"] <= i]
            for i in sorted({a.info["iteration"] for a in labelled})}


# ---------------------------------------------------------------- summary


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """Labels where the curve first reaches ``target`` (log-linear between points), else None."""
    for (n0, e0), (n1, e1) in zip([(None, None), *curve], curve, strict=False):
        if e1 <= target:
            if n0 is None or e0 <= target:
                return float(n1)
            t = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    return None


def spread(values: list[float | None]) -> str:
    """Median (min-max) of the seeds' values; '>' when some seeds never reached the target."""
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    text = f"{np.median(reached):.0f}"
    if len(reached) > 1:
        text += f" ({min(reached):.0f}-{max(reached):.0f})"
    missed = len(values) - len(reached)
    return text + (f", {missed} of {len(values)} not" if missed else "")


def summarise(name: str, curves: dict[str, list[list[tuple[int, dict]]]], floor: dict[str, float],
              console: Console) -> dict:
    """Print the labels-to-target table and the tail table; return them as data."""
    summary: dict = {"floor": floor, "labels_to_target": {}, "tail": {}}
    table = Table(title=f"{name}: labels to reach a force RMSE of k x the floor (median, range over seeds)")
    for column in ("weighting", "floor eV/Å", "way", *(f"{k:g}x" for k in TARGETS), "random / way at 1.2x"):
        table.add_column(column, justify="right")
    for weighting in WEIGHTINGS:
        need = {way: [[labels_to_reach([(n, e[weighting]) for n, e in run], k * floor[weighting])
                       for run in runs] for k in TARGETS] for way, runs in curves.items()}
        summary["labels_to_target"][weighting] = need
        random_at = [v for v in need["random"][-1] if v is not None]
        for way in curves:
            own = [v for v in need[way][-1] if v is not None]
            ratio = f"{np.median(random_at) / np.median(own):.1f}" if random_at and own else "-"
            first = way == "random"
            table.add_row(weighting if first else "", f"{floor[weighting]:.4f}" if first else "",
                          way, *(spread(v) for v in need[way]), "" if first else ratio)
        table.add_section()
    console.print(table)
    loop_final = int(np.median([run[-1][0] for run in curves["loop"]])) if "loop" in curves else None
    if loop_final:
        tail = Table(title=f"{name}: force RMSE eV/Å at {loop_final} labels (the loop's budget), "
                           "median over seeds")
        for column in ("way", *WEIGHTINGS, "worst class"):
            tail.add_column(column, justify="right")
        for way, runs in curves.items():
            at = [min(run, key=lambda p: abs(p[0] - loop_final))[1] for run in runs]
            row = {k: float(np.median([a[k] for a in at])) for k in (*WEIGHTINGS, "worst")}
            summary["tail"][way] = row
            tail.add_row(way, *(f"{row[k]:.4f}" for k in (*WEIGHTINGS, "worst")))
        console.print(tail)
    return summary


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    systems = list(results)
    fig, axes = plt.subplots(len(systems), len(WEIGHTINGS), squeeze=False,
                             figsize=(4.2 * len(WEIGHTINGS), 3.4 * len(systems)))
    for row, name in zip(axes, systems, strict=False):
        floor = results[name]["floor"]
        for ax, weighting in zip(row, WEIGHTINGS, strict=False):
            for way, runs in results[name]["curves"].items():
                ns = sorted({n for run in runs for n, _ in run})
                values = [[dict(run).get(n, {}).get(weighting) for run in runs] for n in ns]
                median = [np.median([v for v in vs if v is not None]) / floor[weighting] for vs in values]
                low = [min(v for v in vs if v is not None) / floor[weighting] for vs in values]
                high = [max(v for v in vs if v is not None) / floor[weighting] for vs in values]
                line, = ax.plot(ns, median, marker="o", ms=3, label=way)
                ax.fill_between(ns, low, high, color=line.get_color(), alpha=0.2)
            for k in TARGETS:
                ax.axhline(k, color="grey", lw=0.6, ls="--")
            ax.set(xscale="log", yscale="log", xlabel="labels", ylabel="force RMSE / floor",
                   title=f"{name}, {weighting} test")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main


def run_system(system: System, workdir: Path, seeds: int, loop_seeds: int, console: Console) -> dict:
    from pyace.activelearning import compute_B_projections

    workdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with timed(seconds, "pool and test (oracle MD, or the cache)"):
        pool = labelled_pool(system, workdir / "pool.db", "pool", console)
        test = labelled_pool(system, workdir / "test.db", "test", console)
        wide = labelled_pool(system, workdir / "wide.db", "wide", console) if system.wide else []
    inner, outer = default_zbl_range(system.elements)
    settings = TrainerConfig(zbl_inner=inner, zbl_outer=outer, loss_stress=0.0,
                             **({"max_functions_per_element": system.max_functions}
                                if system.max_functions else {}))
    baseline = ZBLCalculator(system.elements, inner, outer)
    with console.status(f"{system.name}: choosing the basis on the pool (the trainer's choice)"), \
            timed(seconds, "basis choice"):
        choice = product_basis(pool, system.elements, settings, baseline)
    console.print(f"{system.name}: basis {describe(choice.chosen)}: {choice.reason}; size limit "
                  f"{choice.max_functions} ({choice.limit})")
    bconf = basis_config(choice.chosen, system.elements)
    with console.status(f"{system.name}: design rows of {len(pool)} pool and {len(test)} test structures"), \
            timed(seconds, "design rows"):
        pool_rows, test_rows = design_rows(pool, bconf, baseline), design_rows(test, bconf, baseline)
        wide_rows = design_rows(wide, bconf, baseline) if wide else None
        projections, owners = compute_B_projections(bconf, pool, return_structure_ind_dict=True)
    kinds = Counter(kind_of(a) for a in pool)
    share = {k: v / len(pool) for k, v in kinds.items()}
    console.print(f"{system.name}: pool of {len(pool)} ({', '.join(f'{k} {v}' for k, v in kinds.items())}), "
                  f"test of {len(test)}" + (f", wide-cell test of {len(wide)} frames of {len(wide[0])} atoms"
                                            if wide else ""))

    def score(rows: Rows, chosen: list[int]) -> dict[str, float]:
        return weighted(class_errors(test_rows, fit(rows, chosen, settings)), share)

    floor = score(pool_rows, list(range(len(pool))))
    if wide_rows is not None:
        floor["wide"] = math.sqrt(class_errors(wide_rows, fit(pool_rows, list(range(len(pool))),
                                                              settings))["wide"])
        console.print(f"{system.name}: floor (the whole pool) {floor['md']:.4f} eV/Å on the MD test, "
                      f"{floor['wide']:.4f} eV/Å on MD of the {len(wide[0])}-atom cell")
    curves: dict[str, list[list[tuple[int, dict]]]] = {"random": [], "maxvol": [], "loop": []}
    for seed in range(loop_seeds):
        with timed(seconds, "loop runs (or the cache)"):
            labels = loop_labels(system, seed, workdir / f"loop-{seed}", console)
        everything = labels[max(labels)]
        rows = design_rows(everything, bconf, baseline)
        curves["loop"].append([(len(subset), score(rows, list(range(len(subset)))))
                               for subset in labels.values()])  # labels in iteration order
    base = [n for n in (5, 10, 20, 40, 80, 160, 320) if n < len(pool)]
    grid = sorted({*base, *(n for run in curves["loop"] for n, _ in run if n < len(pool))})
    for seed in range(seeds):
        with console.status(f"{system.name}: random and MaxVol subsets, seed {seed}"), \
                timed(seconds, "random and MaxVol subsets"):
            ways = {"random": random_choice(len(pool), grid, np.random.default_rng(seed)),
                    "maxvol": maxvol_choice(projections, owners, grid, np.random.default_rng(seed))}
            for way, chosen in ways.items():
                curves[way].append([(n, score(pool_rows, subset)) for n, subset in chosen.items()])
    if not curves["loop"]:
        del curves["loop"]
    summary = summarise(system.name, curves, floor, console)
    console.print(f"{system.name}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return {**summary, "curves": curves, "pool": dict(kinds), "n_test": len(test), "seconds": seconds,
            "basis": choice.model_dump(mode="json")}


def product_basis(pool: list[Atoms], elements: list[str], settings: TrainerConfig,
                  baseline: ZBLCalculator):
    """The trainer's own basis choice (``training.basis.choose_basis``) for a fit on the whole
    pool; every arm is then fitted with it, so they compare at one model."""
    fitted = within_force_limit(pool, settings.max_force)
    df, _ = delta_dataframe(fitted, baseline)
    choice, _, _ = choose_basis(df, fitted, elements, settings, sample_weights(fitted, settings.loss_kappa),
                                TargetsConfig())  # no pool structure is of a target class: all scored
    return choice


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the enclosed block's wall time to ``seconds[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cu", "tio2"])
    parser.add_argument("--seeds", type=int, default=5, help="random and MaxVol seeds")
    parser.add_argument("--loop-seeds", type=int, default=2, help="runs of the loop per system")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "data_efficiency")
    parser.add_argument("--tiny", action="store_true",
                        help="a small pool and loop (Cu only, one seed): checks that the benchmark runs")
    args = parser.parse_args(argv)
    console = Console(width=160)
    logging.getLogger("pyacemaker").propagate = False  # the loops' logs go to their run.log only
    logging.getLogger("pyacemaker").setLevel(logging.INFO)
    systems = {"cu": tiny_copper()} if args.tiny else {"cu": copper(1.0), "tio2": titania(1.0)}
    path = args.workdir / "results.json"
    results = json.loads(path.read_text()) if path.is_file() and not args.tiny else {}
    for key, system in systems.items():
        if args.only in (None, key):
            results[system.name] = run_system(system, args.workdir / key, args.seeds,
                                              args.loop_seeds, console)
    path.write_text(json.dumps(results, indent=1))  # both systems, when run one at a time
    plot(results, args.workdir / "learning_curves.png")
    console.print(f"results: {args.workdir / 'results.json'}, curves: {args.workdir / 'learning_curves.png'}")


if __name__ == "__main__":
    main()
