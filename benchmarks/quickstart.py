"""Wall time, per-iteration held-out RMSE and the final validation verdict of the quickstart
(TiO2, CHGNet) and of the same loop on EMT copper, for one or more exploration seeds (the
verdict must not hinge on the seed: issue 31). Runs in fresh temporary workdirs; prints one
table per run and a summary with each run's verdict and its failed checks.

    .venv/bin/python benchmarks/quickstart.py [--only tio2|cu] [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from pyacemaker.config import config_from_dict
from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import resolve
from pyacemaker.status import fmt, history_table

ROOT = Path(__file__).resolve().parents[1]
CU = {"composition": "Cu", "oracle": {"engine": "emt"},
      "budget": {"max_iterations": 3, "max_labels": 90},
      "exploration": {"seed_labels": 30, "labels_per_iteration": 20},
      "trainer": {"kind": "linear"}}


def run(name: str, raw: dict, seed: int | None, console: Console) -> tuple[str, float, object]:
    """Run ``raw`` (a config without workdir) with ``exploration.random_seed`` ``seed`` (the
    config's when None); its name, wall seconds and final state."""
    if seed is not None:
        raw = {**raw, "exploration": {**raw.get("exploration", {}), "random_seed": seed}}
        name = f"{name} seed {seed}"
    with tempfile.TemporaryDirectory() as tmp:
        config = resolve(config_from_dict({**raw, "workdir": str(Path(tmp) / name.replace(" ", "_"))}))
        start = time.perf_counter()
        state = Workflow(config, console=Console(quiet=True), show_progress=False).run()
        seconds = time.perf_counter() - start
    console.print(history_table(state, config.targets))
    return name, seconds, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["tio2", "cu"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[None],
                        help="exploration.random_seed of each run (default: the config's)")
    args = parser.parse_args()
    console = Console()
    cases = {"tio2": yaml.safe_load((ROOT / "examples/quickstart.yaml").read_text()), "cu": CU}
    results = [run(name, raw, seed, console) for name, raw in cases.items()
               if args.only in (None, name) for seed in args.seeds]
    summary = Table(title="active-learning runs")
    for column in ("run", "wall s", "iterations", "labels", "E meV/atom", "F eV/Å", "verdict",
                   "failed checks", "stop"):
        summary.add_column(column)
    for name, seconds, state in results:
        last = state.history[-1]
        verdict = {True: "PASS", False: "FAIL", None: "-"}[last.validation_passed]
        summary.add_row(name, f"{seconds:.0f}", str(last.iteration), str(last.labels_total),
                        fmt(last.test_energy_rmse, "{:.2f}"), fmt(last.test_force_rmse, "{:.4f}"),
                        verdict, ", ".join(last.validation_failed), state.stop_reason)
    console.print(summary)


if __name__ == "__main__":
    main()
