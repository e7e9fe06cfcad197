"""Control: is a run's failed validation its data or its model? Fits the data-efficiency
benchmark's brute-force TiO2 pool (280 CHGNet-labelled 48-atom rutile cells, MD at 300-900 K
plus rare classes; run ``benchmarks/data_efficiency.py --only tio2`` first) with the trainer
(its basis choice, or a fixed one), and validates that potential inside a finished quickstart
run: same held-out set, same cached CHGNet reference, large-cell frames and report checks. When
the pool's potential passes a check the run's own fails, the run's labels are the cause; when
both fail, the model is.

    .venv/bin/python benchmarks/pool_control.py [--pool runs/data_efficiency/tio2/pool.db]
        [--run runs/tio2] [--cutoff 5.12] [--radial-basis SBessel] [--functions 800]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ase.db import connect
from rich.console import Console
from rich.table import Table

from pyacemaker.orchestrator import read_resolved_config
from pyacemaker.training.basis import describe
from pyacemaker.training.linear import fit_linear_ace
from pyacemaker.validation.run import validate_in_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=ROOT / "runs/data_efficiency/tio2/pool.db")
    parser.add_argument("--run", type=Path, default=ROOT / "runs/tio2")
    parser.add_argument("--cutoff", type=float, help="Å; default: the trainer's choice")
    parser.add_argument("--radial-basis", help="default: the trainer's choice")
    parser.add_argument("--functions", type=int, help="per element; default: the trainer's choice")
    args = parser.parse_args()
    console = Console(width=140)
    config = read_resolved_config(args.run)
    pool = [row.toatoms(add_additional_information=True) for row in connect(args.pool).select()]
    fixed = {"cutoff": args.cutoff, "radial_basis": args.radial_basis,
             "functions_per_element": args.functions}
    settings = config.trainer.model_copy(update={"kind": "linear", **{
        k: v for k, v in fixed.items() if v is not None}})
    with tempfile.TemporaryDirectory() as tmp:
        with console.status(f"fitting the pool's {len(pool)} structures"):
            start = time.perf_counter()
            potential, fit = fit_linear_ace(pool, [], config.elements, settings,
                                            Path(tmp) / "potential", config.targets)
        console.print(f"pool fit: {describe(fit.basis.chosen)}, γ subset "
                      f"{fit.basis.gamma_functions or '-'}, {time.perf_counter() - start:.0f} s; "
                      f"train {fit.train_energy_rmse:.2f} meV/atom, {fit.train_force_rmse:.4f} eV/Å")
        with console.status("validating it in the run"):
            result = validate_in_run(potential, config, args.run, show_progress=False)
    table = Table(title=f"the pool's potential validated in {args.run}: "
                        f"{'PASS' if result.passed else 'FAIL'}")
    for column in ("check", "passed", "value"):
        table.add_column(column)
    for check in result.checks:
        table.add_row(check.name, {True: "yes", False: "NO", None: "n/a"}[check.passed], check.value)
    console.print(table)


if __name__ == "__main__":
    main()
