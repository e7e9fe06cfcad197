"""Accuracy of the ACE fits per structure class: linear and nonlinear, several loss weights
(kappa, the share of forces) and basis sizes, on two datasets:

- EMT Cu: 32-atom fcc cells made by the explorer's own strategies (rattle, strain, vacancy,
  surface) plus EMT Langevin MD frames at 600 and 1200 K, split with the loop's stratified rule;
- TiO2 from a run's dataset (default ``runs/tio2``, the quickstart: run ``make quickstart``
  first), with that run's own held-out split.

Prints one table: per fit the held-out errors over the target (bulk) classes (energy, forces,
stresses), then per class the train and held-out energy and force RMSE, and the fit time. With
``--validate``, every TiO2 fit is also validated against the run's oracle (its cached
reference: lattice, B0, elastic constants, phonons), in a second table.

    .venv/bin/python benchmarks/accuracy.py [--only cu|tio2] [--workdir runs/tio2]
        [--kappas 0.05 0.3 0.9 0.999] [--stress-shares 0 0.1 0.3] [--functions 100 300]
        [--nonlinear] [--iterations 300] [--validate] [--prune]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import emt_labelled  # noqa: E402

from pyacemaker.config import BULK_CLASSES, TrainerConfig, default_cutoff, default_zbl_range  # noqa: E402
from pyacemaker.dataset import Dataset, split_of, structure_hash  # noqa: E402
from pyacemaker.orchestrator import read_resolved_config  # noqa: E402
from pyacemaker.structures.strategies import rattle, slab, strain, vacancy  # noqa: E402
from pyacemaker.training.linear import fit_linear_ace  # noqa: E402
from pyacemaker.training.metrics import held_out_metrics  # noqa: E402
from pyacemaker.training.nonlinear import fit_nonlinear_ace, tensorflow_available  # noqa: E402
from pyacemaker.validation.run import validate_in_run  # noqa: E402

TEST_FRACTION = 0.1


def copper_md(temperature: float, frames: int, seed: int):
    """Frames of EMT Langevin MD of a 32-atom fcc Cu cell, 20 steps of 2 fs apart."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    dynamics = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02,
                        rng=np.random.default_rng(seed))
    out = []
    for _ in range(frames):
        dynamics.run(20)
        out.append(atoms.copy())
    return out


def copper_dataset(seed: int = 7):
    """(train, test) of EMT Cu in the explorer's classes, split by the loop's stratified rule."""
    rng = np.random.default_rng(seed)
    cell = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    made = [("seed", cell.copy())]
    made += [(p["generator"], a) for a, p in (rattle(cell, rng, rng.uniform(0.02, 0.1)) for _ in range(30))]
    made += [(p["generator"], a) for a, p in (strain(cell, rng, 0.05, 0.05) for _ in range(30))]
    made += [(p["generator"], a) for a, p in (vacancy(cell, rng, 0.05) for _ in range(15))]
    slabs = (slab(cell, rng, 64, min_width=5.0, stdev=0.05) for _ in range(15))
    made += [(p["generator"], a) for a, p in (r for r in slabs if r)]
    made += [("md", a) for t, s in ((600, 1), (1200, 2)) for a in copper_md(t, 25, s)]
    rows, tests, train, test = Counter(), Counter(), [], []
    for kind, atoms in made:
        labelled = emt_labelled(atoms)
        labelled.info["generator"] = kind
        split = split_of(structure_hash(atoms), TEST_FRACTION, (rows[kind], rows.total()),
                         (tests[kind], tests.total()))
        rows[kind] += 1
        tests[kind] += split == "test"
        (test if split == "test" else train).append(labelled)
    return train, test


def datasets(only: str | None, workdir: Path):
    if only in (None, "cu"):
        yield "EMT Cu", ["Cu"], None, *copper_dataset()
    if only in (None, "tio2"):
        if not (workdir / "dataset.db").is_file():
            print(f"skipping TiO2: {workdir / 'dataset.db'} not found (run `make quickstart` first)")
            return
        config = read_resolved_config(workdir)
        data = Dataset(workdir / "dataset.db", config.trainer.test_fraction)
        yield f"TiO2 ({workdir.name})", config.elements, config, data.labelled("train"), data.labelled("test")


def fits(args) -> list[tuple[str, int, float, float, bool]]:
    """(trainer, functions per element, kappa, stress share, pruned to the active set) of every
    fit to run; pacemaker's loss has no stress term."""
    prune = (False, True) if args.prune else (False,)
    out = [("linear", n, k, s, p) for n in args.functions for k in args.kappas
           for s in args.stress_shares for p in prune]
    if args.nonlinear and tensorflow_available():
        out += [("nonlinear", min(args.functions), k, 0.0, False) for k in args.nonlinear_kappas]
    return out


ORACLE_CHECKS = ("lattice vs oracle", "bulk modulus vs oracle", "elastic constants vs oracle", "phonons")


def oracle_checks(potential, config, workdir: Path) -> list[str]:
    """The potential's checks against the run's (cached) oracle reference, as table cells."""
    result = validate_in_run(potential, config, workdir, show_progress=False)
    checks = {c.name: c for c in result.checks}
    return [_verdict(checks.get(name)) for name in ORACLE_CHECKS]


def _verdict(check) -> str:
    if check is None:
        return "-"
    mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "n/a"}[check.passed]
    return f"{mark} {check.value.split(' (')[0]}"  # the numbers compared are in the report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cu", "tio2"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "tio2")
    parser.add_argument("--kappas", type=float, nargs="+", default=[0.05, 0.3, 0.9, 0.999])
    parser.add_argument("--stress-shares", type=float, nargs="+", default=[0.0, 0.1, 0.3],
                        help="trainer.loss_stress values (linear fits)")
    parser.add_argument("--functions", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--nonlinear", action="store_true", help="add nonlinear (pacemaker) fits")
    parser.add_argument("--prune", action="store_true",
                        help="add each linear fit pruned to the structures that hold the active set")
    parser.add_argument("--nonlinear-kappas", type=float, nargs="+", default=[0.3, 0.9])
    parser.add_argument("--iterations", type=int, default=300, help="BFGS iterations (nonlinear)")
    parser.add_argument("--validate", action="store_true",
                        help="validate each TiO2 fit against the run's oracle (about a minute each)")
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title="ACE accuracy per structure class (train | held-out RMSE)")
    for name in ("data", "trainer", "funcs", "κ", "σ share", "pruned", "fit s", "class", "n train/test",
                 "train E meV/at", "train F eV/Å", "test E meV/at", "test F eV/Å", "test σ GPa"):
        table.add_column(name, justify="right", no_wrap=True)
    checks = Table(title="The TiO2 fits against the run's oracle")
    for name in ("trainer", "funcs", "κ", "σ share", "pruned", *ORACLE_CHECKS):
        checks.add_column(name)
    for name, elements, config, train, test in datasets(args.only, args.workdir):
        inner, outer = default_zbl_range(elements)
        for kind, functions, kappa, share, prune in fits(args):
            settings = TrainerConfig(cutoff=default_cutoff(elements), radial_basis="SBessel",
                                     zbl_inner=inner, zbl_outer=outer,
                                     functions_per_element=functions, loss_kappa=kappa,
                                     loss_stress=share, nonlinear_iterations=args.iterations,
                                     prune_to_active_set=prune)
            fit = fit_nonlinear_ace if kind == "nonlinear" else fit_linear_ace
            with tempfile.TemporaryDirectory() as tmp:
                potential, result = fit(train, test, elements, settings, Path(tmp) / "p",
                                        classes=list(BULK_CLASSES))
                calc = potential.calculator(with_gamma=False)
                on_train = held_out_metrics(train, calc, BULK_CLASSES, settings.max_force)
                bulk_test = held_out_metrics(test, calc, BULK_CLASSES, settings.max_force).targeted
                if args.validate and config is not None:
                    checks.add_row(kind, str(functions), f"{kappa:g}", f"{share:g}", str(prune),
                                   *oracle_checks(potential, config, args.workdir))
            on_test = result.test_by_class
            head = [name, kind, str(functions), f"{kappa:g}", f"{share:g}", str(result.n_pruned),
                    f"{result.seconds:.1f}"]
            bulk_train = on_train.targeted
            table.add_row(*head, "[bold]bulk[/]", f"{bulk_train.n_structures}/-",
                          f"{bulk_train.energy_rmse:.2f}", f"{bulk_train.force_rmse:.3f}",
                          _fmt(result.test_energy_rmse, "{:.2f}"), _fmt(result.test_force_rmse, "{:.3f}"),
                          _fmt(bulk_test and bulk_test.stress_rmse, "{:.3f}"))
            for cls, errors in on_train.by_generator.items():
                held = on_test.get(cls)
                table.add_row("", "", "", "", "", "", "", cls,
                              f"{errors.n_structures}/{held.n_structures if held else 0}",
                              f"{errors.energy_rmse:.2f}", f"{errors.force_rmse:.3f}",
                              _fmt(held and held.energy_rmse, "{:.2f}"),
                              _fmt(held and held.force_rmse, "{:.3f}"),
                              _fmt(held and held.stress_rmse, "{:.3f}"))
            table.add_section()
            console.print(f"{name} {kind} {functions} functions κ={kappa:g} σ share {share:g}"
                          f"{f' pruned {result.n_pruned}' if prune else ''}: bulk held-out "
                          f"{_fmt(result.test_energy_rmse, '{:.2f}')} meV/atom, "
                          f"{_fmt(result.test_force_rmse, '{:.3f}')} eV/Å ({result.seconds:.0f} s)")
    console.print(table)
    if checks.row_count:
        console.print(checks)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


if __name__ == "__main__":
    main()
