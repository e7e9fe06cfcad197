"""Where a run's wall time goes: each phase's wall time, and the part of it in which an engine
(the oracle, LAMMPS, pyace or pacemaker) was running.

Engine calls mark themselves with ``engine_call()`` (any thread of the driver) or hand in the
interval they ran in (``record``, e.g. from a worker process; wall-clock epochs, so the worker
must share the driver's clock). ``phase()`` collects the intervals recorded while it is open and
reports their union, clipped to the phase, as its engine time: parallel engine calls count
once, and what is left is the time this package's own Python layer kept the engines waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_lock = threading.Lock()
_open: list[tuple[float, float]] | None = None  # intervals of the phase being timed


@dataclass
class PhaseTiming:
    """Wall time of one phase and the time an engine was running in it, seconds."""

    wall: float = 0.0
    engine: float = 0.0


def record(start: float, end: float) -> None:
    """Add an engine interval (``time.time()`` epochs) to the phase being timed, if any."""
    with _lock:
        if _open is not None:
            _open.append((start, end))


@contextmanager
def engine_call() -> Iterator[None]:
    """Mark the enclosed code as engine time."""
    start = time.time()
    try:
        yield
    finally:
        record(start, time.time())


@contextmanager
def phase() -> Iterator[PhaseTiming]:
    """Time the enclosed phase; the yielded timing is filled in when it ends. Not nested."""
    global _open
    timing = PhaseTiming()
    with _lock:
        _open = []
    start = time.time()
    try:
        yield timing
    finally:
        end = time.time()
        with _lock:
            intervals, _open = _open, None
        timing.wall = end - start
        timing.engine = busy_seconds(intervals, start, end)


def busy_seconds(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Length of the union of ``intervals`` within ``[start, end]``, seconds."""
    total, reach = 0.0, start
    for a, b in sorted(intervals):
        a, b = max(a, reach), min(b, end)
        if b > a:
            total += b - a
            reach = b
    return total
