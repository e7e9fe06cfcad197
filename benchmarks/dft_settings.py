"""What a DFT setting costs and what it changes: labels a run's own structures again with
Quantum ESPRESSO at several k-point spacings and SCF thresholds, and prints each setting's time
and its force, stress and energy differences from the densest grid and tightest threshold.

The run's resolved config gives everything else (pseudopotentials, cutoffs, smearing). By
default the structures are the labelled rows with the most k points at the run's spacing, one
per class (``generator``), three at most; ``--rows`` picks them by dataset id.

    .venv/bin/python benchmarks/dft_settings.py runs/si_espresso
    .venv/bin/python benchmarks/dft_settings.py runs/si_espresso --kspacing 0.25 0.4 --rows 5 9
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.db import connect
from rich.console import Console
from rich.table import Table

from pyacemaker.config import OracleConfig
from pyacemaker.oracle.espresso import CONV_THR_PER_ATOM, kpoint_grid
from pyacemaker.oracle.registry import make_oracle
from pyacemaker.orchestrator import read_resolved_config

GPA = 160.21766  # eV/Angstrom^3 in GPa


def pick_rows(db_path: Path, kspacing: float, rows: list[int] | None) -> list[tuple[str, Atoms]]:
    """``(name, atoms)`` of the chosen rows: ``rows``, else the labelled row with the most k
    points of each class (three classes at most)."""
    db = connect(db_path, use_lock_file=False)
    if rows:
        return [(f"{r.id} {r.generator}", r.toatoms()) for r in (db.get(id=i) for i in rows)]
    best: dict[str, tuple[int, int, Atoms]] = {}
    for row in db.select(status="labelled"):
        atoms = row.toatoms()
        points = math.prod(kpoint_grid(atoms, kspacing))
        if row.generator not in best or points > best[row.generator][0]:
            best[row.generator] = (points, row.id, atoms)
    chosen = sorted(best.items(), key=lambda item: -item[1][0])[:3]
    return [(f"{row_id} {generator}", atoms) for generator, (_, row_id, atoms) in chosen]


def label(job: tuple[OracleConfig, str, Atoms, float, float, Path]) -> dict:
    """One pw.x calculation of ``atoms`` at ``kspacing`` and ``conv_thr`` (Ry per atom)."""
    settings, name, atoms, kspacing, conv_thr, scratch = job
    settings = settings.model_copy(update={
        "workers": 1, "dft": settings.dft.model_copy(update={"kspacing": kspacing}),
        "parameters": {**settings.parameters, "electrons": {
            **settings.parameters.get("electrons", {}), "conv_thr": conv_thr * len(atoms)}}})
    start = time.perf_counter()
    result = make_oracle(settings, scratch / f"{name.split()[0]}_{kspacing}_{conv_thr:g}").label(atoms)
    if not result.ok:
        raise SystemExit(f"pw.x failed on {name} at kspacing {kspacing}, conv_thr {conv_thr:g}: "
                         f"{result.reason}")
    return {"name": name, "kspacing": kspacing, "conv_thr": conv_thr, "natoms": len(atoms),
            "seconds": time.perf_counter() - start, "energy": result.energy,
            "forces": np.array(result.forces), "stress": np.array(result.stress)}


def table(results: list[dict]) -> Table:
    """Each setting against the reference (the smallest spacing with the smallest threshold)."""
    out = Table(title="DFT settings against the densest grid and tightest threshold")
    for column in ("structure", "kspacing", "conv_thr /atom", "k points", "s", "force RMSE eV/Å",
                   "stress max GPa", "energy meV/atom"):
        out.add_column(column, justify="right")
    for name in dict.fromkeys(r["name"] for r in results):
        mine = [r for r in results if r["name"] == name]
        ref = min(mine, key=lambda r: (r["kspacing"], r["conv_thr"]))
        for r in sorted(mine, key=lambda r: (r["kspacing"], r["conv_thr"])):
            same = r is ref
            out.add_row(name, f"{r['kspacing']:g}", f"{r['conv_thr']:g}", str(r["kpoints"]),
                        f"{r['seconds']:.0f}",
                        "ref" if same else f"{np.sqrt(np.mean((r['forces'] - ref['forces'])**2)):.4f}",
                        "ref" if same else f"{np.abs(r['stress'] - ref['stress']).max() * GPA:.2f}",
                        "ref" if same else f"{1000 * (r['energy'] - ref['energy']) / r['natoms']:+.1f}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="a run with the espresso oracle")
    parser.add_argument("--kspacing", type=float, nargs="+", default=[0.25, 0.4, 0.5])
    parser.add_argument("--conv-thr", type=float, nargs="+", default=[1e-9, CONV_THR_PER_ATOM],
                        help="SCF thresholds, Ry per atom (each at the run's own kspacing)")
    parser.add_argument("--rows", type=int, nargs="+", help="dataset ids of the structures")
    args = parser.parse_args(argv)
    config = read_resolved_config(args.workdir)
    if config.oracle.engine != "espresso":
        raise SystemExit(f"{args.workdir} labels with {config.oracle.engine}, not espresso")
    own = config.oracle.dft.kspacing
    structures = pick_rows(args.workdir / "dataset.db", own, args.rows)
    settings = sorted({(k, min(args.conv_thr)) for k in args.kspacing}
                      | {(own, c) for c in args.conv_thr})
    console = Console()
    with tempfile.TemporaryDirectory(prefix="dft_settings_") as scratch, \
            ProcessPoolExecutor(config.oracle.workers) as pool, \
            console.status(f"{len(structures) * len(settings)} pw.x calculations"):
        jobs = [(config.oracle, name, atoms, k, c, Path(scratch))
                for name, atoms in structures for k, c in settings]
        results = list(pool.map(label, jobs))
    for r, (_, _, atoms, k, _, _) in zip(results, jobs, strict=True):
        r["kpoints"] = "x".join(map(str, kpoint_grid(atoms, k)))
    console.print(table(results))


if __name__ == "__main__":
    main()
