"""What the Python layer costs: the share of a run's wall time spent outside the engines, per
phase, from the timings the run records itself (``state.json``: each iteration's
``phase_seconds`` and ``engine_seconds``); then per iteration its wall time and the oracle's
seconds per label (``dataset.db``).

Engine time is the union of the intervals in which an engine ran: oracle calls in the labelling
workers, LAMMPS, pyace (design matrix, solve, active set, every evaluation of the potential)
and pacemaker; the oracle's own validation calculations count whole. What is left of a phase is
this package's own work: starting workers, writing inputs, parsing outputs, selection, the
database, reports.

    .venv/bin/python benchmarks/overhead.py [WORKDIR ...]       # default: runs/tio2 runs/si_espresso
    .venv/bin/python benchmarks/overhead.py --run examples/quickstart.yaml examples/si_espresso.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.db import connect
from rich.console import Console
from rich.table import Table

from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import load_config
from pyacemaker.state import WorkflowState

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("explore", "label", "train", "evaluate")


def phase_totals(state: WorkflowState) -> dict[str, tuple[float, float]]:
    """(wall, engine) seconds per phase, summed over the iterations."""
    return {name: (sum(r.phase_seconds.get(name, 0.0) for r in state.history),
                   sum(r.engine_seconds.get(name, 0.0) for r in state.history)) for name in PHASES}


def overhead_table(name: str, state: WorkflowState) -> Table:
    labels = max((r.labels_total for r in state.history), default=0)
    table = Table(title=f"{name}: {len(state.history)} iterations, {labels} labels"
                        + ("" if state.phase == "done" else f", stopped in {state.phase}"))
    for column in ("phase", "wall s", "engine s", "outside s", "outside %"):
        table.add_column(column, justify="right")
    totals = phase_totals(state)
    wall_sum = sum(w for w, _ in totals.values())
    engine_sum = sum(e for _, e in totals.values())
    for phase, (wall, engine) in [*totals.items(), ("total", (wall_sum, engine_sum))]:
        outside = wall - engine
        share = f"{100 * outside / wall:.1f}" if wall else "-"
        style = "bold" if phase == "total" else None
        table.add_row(phase, f"{wall:.1f}", f"{engine:.1f}", f"{outside:.1f}", share, style=style)
    return table


def iteration_table(name: str, state: WorkflowState, workdir: Path) -> Table:
    """Per iteration: wall time, new labels, and the oracle's seconds per label (from the
    dataset: each label's own wall time in its worker)."""
    seconds: dict[int, list[float]] = {}
    dataset = workdir / "dataset.db"
    if dataset.is_file():
        for row in connect(dataset, use_lock_file=False).select(status="labelled"):
            seconds.setdefault(row.get("iteration", -1), []).append(row.data.get("seconds", 0.0))
    table = Table(title=f"{name}: per iteration")
    for column in ("iteration", "wall s", "new labels", "s per label (median)", "max", "held-out F eV/Å"):
        table.add_column(column, justify="right")
    for record in state.history:
        own = seconds.get(record.iteration, [])
        table.add_row(str(record.iteration), f"{sum(record.phase_seconds.values()):.0f}", str(len(own)),
                      f"{np.median(own):.1f}" if own else "-", f"{max(own):.1f}" if own else "-",
                      f"{record.test_force_rmse:.3f}" if record.test_force_rmse is not None else "-")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="*", type=Path,
                        default=[ROOT / "runs" / "tio2", ROOT / "runs" / "si_espresso"])
    parser.add_argument("--run", nargs="+", type=Path, metavar="CONFIG",
                        help="run (or resume) these configs first, then report their workdirs")
    args = parser.parse_args()
    console = Console()
    workdirs = list(args.workdirs) if not args.run else []
    for path in args.run or []:
        config = load_config(path)
        Workflow(config, console=console).run()
        workdirs.append(config.workdir)
    for workdir in workdirs:
        if not (workdir / "state.json").is_file():
            console.print(f"[yellow]{workdir}: no run here (make one with --run CONFIG)[/]")
            continue
        state = WorkflowState.load(workdir)
        if not any(r.phase_seconds for r in state.history):
            console.print(f"[yellow]{workdir}: made before runs recorded their phase timings[/]")
            continue
        console.print(overhead_table(workdir.name, state))
        console.print(iteration_table(workdir.name, state, workdir))


if __name__ == "__main__":
    main()
