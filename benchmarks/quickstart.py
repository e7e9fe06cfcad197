"""Wall time and per-iteration held-out RMSE of the quickstart (TiO2, CHGNet) and of the same
loop on EMT copper. Runs in fresh temporary workdirs; prints one table per run and a summary.

    .venv/bin/python benchmarks/quickstart.py [--only tio2|cu]
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
from pyacemaker.status import history_table

ROOT = Path(__file__).resolve().parents[1]
CU = {"composition": "Cu", "oracle": {"engine": "emt"},
      "budget": {"max_iterations": 3, "max_labels": 90},
      "exploration": {"seed_labels": 30, "labels_per_iteration": 20},
      "trainer": {"kind": "linear"}}


def run(name: str, raw: dict, console: Console) -> tuple[str, float, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = resolve(config_from_dict({**raw, "workdir": str(Path(tmp) / name)}))
        start = time.perf_counter()
        state = Workflow(config, console=Console(quiet=True), show_progress=False).run()
        seconds = time.perf_counter() - start
    console.print(history_table(state, config.targets))
    return name, seconds, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["tio2", "cu"])
    args = parser.parse_args()
    console = Console()
    cases = {"tio2": yaml.safe_load((ROOT / "examples/quickstart.yaml").read_text()), "cu": CU}
    results = [run(name, raw, console) for name, raw in cases.items()
               if args.only in (None, name)]
    summary = Table(title="active-learning runs")
    for column in ("run", "wall s", "iterations", "labels", "E meV/atom", "F eV/Å", "stop"):
        summary.add_column(column)
    for name, seconds, state in results:
        last = state.history[-1]
        summary.add_row(name, f"{seconds:.0f}", str(last.iteration), str(last.labels_total),
                        f"{last.test_energy_rmse:.2f}", f"{last.test_force_rmse:.4f}",
                        state.stop_reason)
    console.print(summary)


if __name__ == "__main__":
    main()
