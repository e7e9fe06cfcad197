"""Label many structures in parallel local worker processes, storing each result at once."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ase import Atoms

from pyacemaker.config import OracleConfig
from pyacemaker.oracle.base import LabelResult
from pyacemaker.oracle.registry import make_oracle
from pyacemaker.progress import progress_bar
from pyacemaker.timing import record

_oracle = None


def _start_worker(settings: OracleConfig, scratch: Path) -> None:
    """Worker initialiser: one engine thread per process, one oracle per process."""
    global _oracle
    os.environ["OMP_NUM_THREADS"] = "1"
    _oracle = make_oracle(settings, scratch)


def _label(row_id: int, atoms: Atoms) -> tuple[int, LabelResult, tuple[float, float]]:
    """The label of one row, and the wall-clock interval the oracle took for it."""
    start = time.time()
    result = _oracle.label(atoms)
    return row_id, result, (start, time.time())


def label_all(
    settings: OracleConfig,
    items: list[tuple[int, Atoms]],
    on_result: Callable[[int, LabelResult], None],
    scratch: Path,
    show_progress: bool = True,
) -> None:
    """Label ``items`` (row id, atoms) with ``settings.workers`` processes; engines that write
    files do so under ``scratch``.

    ``on_result(row_id, result)`` runs in this process as each label arrives, so a killed
    run loses at most the calculations in flight.
    """
    if not items:
        return
    context = multiprocessing.get_context("spawn")
    workers = min(settings.workers, len(items))
    progress = progress_bar(show_progress)
    with progress, ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                       initargs=(settings, scratch)) as pool:
        task = progress.add_task(f"labelling ({settings.engine})", total=len(items))
        futures = [pool.submit(_label, row_id, atoms) for row_id, atoms in items]
        for future in as_completed(futures):
            row_id, result, interval = future.result()
            record(*interval)
            on_result(row_id, result)
            progress.advance(task)
