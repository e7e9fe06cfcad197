"""Phase timing: the union of engine intervals, recorded from any thread of the driver."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyacemaker.timing import busy_seconds, engine_call, phase, record


def test_busy_seconds_is_the_union_clipped_to_the_phase():
    intervals = [(0.0, 2.0), (1.0, 3.0), (2.5, 2.7), (5.0, 6.0), (-1.0, 0.5), (9.0, 12.0)]
    assert busy_seconds(intervals, 0.0, 10.0) == pytest.approx(3.0 + 1.0 + 1.0)
    assert busy_seconds([], 0.0, 10.0) == 0.0


def test_phase_counts_parallel_engine_calls_once_and_nothing_outside_it():
    record(0.0, 1e12)  # no phase open: dropped

    def engine_work(_):
        with engine_call():
            time.sleep(0.2)

    with phase() as spent:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(engine_work, range(2)))  # two at once: 0.2 s of engine time
        time.sleep(0.1)  # the driver's own work
    assert 0.3 <= spent.wall < 0.6
    assert 0.19 <= spent.engine <= 0.3
    with phase() as idle:
        time.sleep(0.05)
    assert idle.engine == 0.0 and idle.wall >= 0.05
