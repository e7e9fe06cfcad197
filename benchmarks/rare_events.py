"""Does the loop with kinetic Monte Carlo learn a vacancy's hop barrier?

For each metal, a real loop (EMT as the oracle, LAMMPS MD, linear ACE) starts from a 2x2x2
cubic cell with one vacancy, so the policy runs saddle searches and kMC from the first fit. After
every iteration the benchmark takes that iteration's potential, finds the nearest-neighbour hop
with the dimer method (γ-guarded) and measures its barrier along a climbing-image NEB, against
EMT's own NEB barrier in the same cell. The table shows, per iteration: labels, how many came
from saddle searches, the kMC runs that halted on γ, processes found, the hop barrier of the
potential and its error, and the explore phase's wall time.

    .venv/bin/python benchmarks/rare_events.py [--only cu] [--iterations 4]

Runs are kept in runs/rare_events/<metal>; a second call resumes and re-measures them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ase.io
import numpy as np
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.db import connect
from rich.console import Console
from rich.table import Table

from pyacemaker.kmc import GENERATOR
from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import load_config
from pyacemaker.saddles import (
    Extrapolating,
    GuardedCalculator,
    connected_minimum,
    dimer_search,
    minimized,
    neb_path,
)
from pyacemaker.state import WorkflowState
from pyacemaker.structures import defect_atoms
from pyacemaker.training.potential import Potential

ROOT = Path(__file__).resolve().parents[1]
METALS = {"cu": "Cu", "al": "Al", "ni": "Ni"}
SEARCHES = 8  # dimer searches for the hop per potential


def vacancy_hop(symbol: str) -> tuple[Atoms, Atoms]:
    """(initial, final) of a nearest-neighbour hop into a vacancy at the corner of a 2x2x2
    cubic fcc cell of ``symbol`` (ASE's lattice constant), unrelaxed."""
    perfect = bulk(symbol, "fcc", cubic=True) * (2, 2, 2)
    neighbour = int(np.argsort(perfect.get_distances(0, range(len(perfect)), mic=True))[1])
    initial, final = perfect.copy(), perfect.copy()
    final.positions[neighbour] = perfect.positions[0]
    del initial[0], final[0]
    return initial, final


def hop_barrier(potential: Potential, initial: Atoms, halt: float) -> tuple[float | None, str]:
    """The potential's barrier (eV) of the first dimer-found process that moves one atom, along
    a climbing-image NEB through the saddle; ``None`` and why when none is found."""
    calc = GuardedCalculator(potential, halt)
    rng = np.random.default_rng(0)
    try:
        minimum = minimized(initial, calc)
        for _ in range(SEARCHES):
            saddle = dimer_search(minimum, calc, rng, int(rng.choice(defect_atoms(minimum))))
            final = None if saddle is None else connected_minimum(minimum, saddle, calc)
            if final is not None and np.sum(np.linalg.norm(
                    final.positions - minimum.positions, axis=1) > 0.5) == 1:
                return neb_path(minimum, final, calc, via=saddle.atoms).barrier, ""
    except Extrapolating as halted:
        return None, f"halts: γ {halted.gamma:.1f} > {halt:g}"
    return None, f"no hop in {SEARCHES} searches"


def run_loop(symbol: str, iterations: int, folder: Path) -> Path:
    """The loop's config in ``folder``, run (or resumed) to ``iterations``; its workdir."""
    folder.mkdir(parents=True, exist_ok=True)
    initial, _ = vacancy_hop(symbol)
    ase.io.write(folder / "vacancy.extxyz", initial)
    ase.io.write(folder / "primitive.extxyz", bulk(symbol, "fcc"))
    config = {
        "composition": symbol, "workdir": str(folder / "run"), "oracle": {"engine": "emt"},
        "seeds": {"files": [str(folder / "vacancy.extxyz")]},
        "budget": {"max_iterations": iterations, "max_labels": 400},
        "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
        "exploration": {"seed_labels": 20, "labels_per_iteration": 12, "md_steps": 60,
                        "rare_events": {"runs": 2, "kmc_steps": 2, "searches": 4}},
        "trainer": {"kind": "linear"},
        "validation": {"every_iteration": False, "structure": str(folder / "primitive.extxyz")},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    Workflow(load_config(folder / "config.yaml"), show_progress=True).run()
    return folder / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(METALS), action="append")
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    console = Console(width=120)
    for key in args.only or sorted(METALS):
        symbol = METALS[key]
        initial, final = vacancy_hop(symbol)
        start = time.perf_counter()
        reference = neb_path(minimized(initial, EMT()), minimized(final, EMT()), EMT()).barrier
        console.print(f"{symbol}: EMT's own NEB barrier {reference:.3f} eV "
                      f"({time.perf_counter() - start:.0f} s)")
        run = run_loop(symbol, args.iterations, ROOT / "runs" / "rare_events" / key)
        state = WorkflowState.load(run)
        rows = list(connect(str(run / "dataset.db")).select())
        table = Table(title=f"{symbol} vacancy hop: EMT {reference:.3f} eV")
        for name in ("it", "labels", "from saddle searches", "kMC halted", "processes",
                     "hop barrier (eV)", "error (eV)", "explore (s)"):
            table.add_column(name, justify="right")
        for record in state.history:
            potential = Potential.load(run / "iterations" / f"iter_{record.iteration:03d}" / "potential")
            halt = record.policy.gamma_halt if record.policy else 25.0
            barrier, why = hop_barrier(potential, initial, halt)
            saddle_labels = sum(1 for r in rows if r.get("generator") == GENERATOR
                                and r.iteration <= record.iteration)
            table.add_row(
                str(record.iteration), str(record.labels_total), str(saddle_labels),
                f"{record.kmc_halts}/{record.kmc_runs}" if record.kmc_runs else "-",
                str(len(record.processes)),
                f"{barrier:.3f}" if barrier is not None else why,
                f"{barrier - reference:+.3f}" if barrier is not None else "-",
                f"{record.phase_seconds.get('explore', 0.0):.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
