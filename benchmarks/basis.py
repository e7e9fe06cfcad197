"""What limits the linear ACE basis on a run's data: the trainer's own choice (cross-validated
cutoff, radial basis and size), then fixed sizes past the extrapolation grade's limit, each
with γ from its own basis and from the γ basis the trainer writes (``gamma.yaml``).

For each size it prints the held-out errors (the run's own split, target classes), the 90th
percentile of the held-out structures' largest γ with the basis's own active set and with the
trainer's γ basis, and the fit time. γ of about 1 means interpolation; the loop collects
candidates above ~5, so an active set whose held-out γ is in the tens or thousands has lost its
meaning, whatever the fit's accuracy.

    .venv/bin/python benchmarks/basis.py [--workdir runs/tio2] [--sizes 240 480 720 960]
        [--cutoff 5.12] [--radial-basis SBessel]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pyacemaker.dataset import Dataset
from pyacemaker.orchestrator import read_resolved_config
from pyacemaker.structures import bare
from pyacemaker.training.basis import describe
from pyacemaker.training.linear import MAXVOL, fit_linear_ace
from pyacemaker.training.potential import Potential
from pyacemaker.training.selection import max_gamma

ROOT = Path(__file__).resolve().parents[1]


def own_basis_gamma(potential: Potential, train, test) -> float:
    """90th percentile of the held-out structures' largest γ with an active set of the
    potential's whole basis (what γ would be without the trainer's γ basis)."""
    from pyace import BBasisConfiguration
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    bconf = BBasisConfiguration(str(potential.yaml))
    active = compute_active_set(compute_B_projections(bconf, [bare(a) for a in train]), **MAXVOL)
    with tempfile.TemporaryDirectory() as tmp:
        own = Potential.from_files(potential.files(), Path(tmp)).model_copy(
            update={"gamma_functions_per_element": None})
        save_active_inverse_set(str(own.asi), compute_A_active_inverse(active),
                                elements_name=potential.elements)
        return float(np.percentile(max_gamma(own, test), 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "tio2")
    parser.add_argument("--sizes", type=int, nargs="+", default=[240, 480, 720, 960])
    parser.add_argument("--cutoff", type=float, default=None, help="Å; default: the auto choice's")
    parser.add_argument("--radial-basis", default=None, help="default: the auto choice's")
    args = parser.parse_args()
    console = Console(width=140)
    config = read_resolved_config(args.workdir)
    dataset = Dataset(args.workdir / "dataset.db", config.trainer.test_fraction)
    train, test = dataset.labelled("train"), dataset.labelled("test")
    settings = config.trainer.model_copy(update={"kind": "linear"})
    table = Table(title=f"linear ACE on {args.workdir} ({len(train)} train, {len(test)} held out)")
    for column in ("basis", "γ basis", "fit s", "test E meV/atom", "test F eV/Å",
                   "held-out γ p90 (trainer's)", "held-out γ p90 (own basis)"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        with console.status("the trainer's own choice (cross-validation)"):
            start = time.perf_counter()
            _, auto = fit_linear_ace(train, test, config.elements, settings, Path(tmp) / "auto",
                                     config.targets)
        chosen = auto.basis.chosen
        table.add_row(f"auto: {describe(chosen)}", str(auto.basis.gamma_functions or "-"),
                      f"{time.perf_counter() - start:.0f}", f"{auto.test_energy_rmse:.2f}",
                      f"{auto.test_force_rmse:.4f}", f"{auto.held_out_gamma:.3g}", "")
        console.print(f"auto: {auto.basis.reason}; sizes up to {auto.basis.max_functions} "
                      f"({auto.basis.limit}); γ limit: {auto.basis.gamma_limit}")
        fixed = settings.model_copy(update={"cutoff": args.cutoff or chosen.cutoff,
                                            "radial_basis": args.radial_basis or chosen.radial_basis})
        for size in args.sizes:
            with console.status(f"{size} functions per element"):
                start = time.perf_counter()
                potential, fit = fit_linear_ace(
                    train, test, config.elements, fixed.model_copy(update={"functions_per_element": size}),
                    Path(tmp) / f"f{size}", config.targets)
                seconds = time.perf_counter() - start
                own = own_basis_gamma(potential, train, test)
            table.add_row(describe(fit.basis.chosen), str(fit.basis.gamma_functions or "-"),
                          f"{seconds:.0f}", f"{fit.test_energy_rmse:.2f}", f"{fit.test_force_rmse:.4f}",
                          f"{fit.held_out_gamma:.3g}", f"{own:.3g}")
    console.print(table)


if __name__ == "__main__":
    main()
