"""Linear (pyace) against nonlinear (pacemaker, TensorFlow) ACE on the same data: held-out
energy/force RMSE and fit time. Datasets: EMT Cu (60 train / 20 test rattled, strained 32-atom
cells) and the TiO2 quickstart's dataset (run `make quickstart` first; its own train/test split).

    .venv/bin/python benchmarks/trainers.py [--iterations 300] [--only cu|tio2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import emt_copper  # noqa: E402

from pyacemaker.config import TrainerConfig, default_cutoff, default_zbl_range  # noqa: E402
from pyacemaker.dataset import Dataset  # noqa: E402
from pyacemaker.training.linear import fit_linear_ace  # noqa: E402
from pyacemaker.training.nonlinear import fit_nonlinear_ace  # noqa: E402


def datasets(only: str | None):
    if only in (None, "cu"):
        yield "EMT Cu", ["Cu"], emt_copper(60, seed=1), emt_copper(20, seed=2)
    db = ROOT / "runs" / "tio2" / "dataset.db"
    if only in (None, "tio2"):
        if not db.is_file():
            print(f"skipping TiO2: {db} not found (run `make quickstart` first)")
            return
        data = Dataset(db, test_fraction=0.1)
        yield "TiO2 quickstart", ["O", "Ti"], data.labelled("train"), data.labelled("test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="BFGS iterations (nonlinear)")
    parser.add_argument("--only", choices=["cu", "tio2"])
    args = parser.parse_args()
    table = Table(title="linear vs nonlinear ACE (held-out RMSE)")
    for name in ("data", "train/test", "atoms", "trainer", "functions", "fit s", "E meV/atom",
                 "F eV/Å", "train E", "train F"):
        table.add_column(name, justify="right")
    for name, elements, train, test in datasets(args.only):
        inner, outer = default_zbl_range(elements)
        settings = TrainerConfig(cutoff=default_cutoff(elements), zbl_inner=inner, zbl_outer=outer,
                                 nonlinear_iterations=args.iterations)
        with tempfile.TemporaryDirectory() as tmp:
            linear = fit_linear_ace(train, test, elements, settings, Path(tmp) / "linear")[1]
            fixed = settings.model_copy(update={"functions_per_element": linear.functions_per_element})
            nonlinear = fit_nonlinear_ace(train, test, elements, fixed, Path(tmp) / "nonlinear")[1]
        for kind, r in (("linear", linear), (f"nonlinear ({args.iterations} it)", nonlinear)):
            table.add_row(name, f"{r.n_train}/{r.n_test}", str(sum(len(a) for a in train)), kind,
                          str(r.functions_per_element), f"{r.seconds:.0f}",
                          f"{r.test_energy_rmse:.2f}", f"{r.test_force_rmse:.4f}",
                          f"{r.train_energy_rmse:.2f}", f"{r.train_force_rmse:.4f}")
        Console(width=160).print(table)


if __name__ == "__main__":
    main()
