"""A faulty oracle for the fault-injection tests (tests/test_faults.py): ASE's EMT that kills its
worker process or hangs on some structures, and can fill the disk once.

Which structures: by their hash (``structure_hash``), ``int(hash[:8], 16) % modulus`` is 0 for
a crash (``os._exit``, as a segfaulting engine would) and 1 for a hang (a sleep far beyond
``oracle.timeout_s``); a test finds the same structures from the stored rows. Every finished
calculation appends its hash to the file ``PYACEMAKER_TEST_LOG`` names. When
``PYACEMAKER_TEST_FILL`` names a file and ``<that file>.trigger`` exists, the calculation
after ``PYACEMAKER_TEST_FILL_AFTER`` logged ones removes the trigger and fills the disk with
that file, then returns its result: the driver's next write finds no space.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ase.calculators.emt import EMT

from pyacemaker.dataset import structure_hash

CRASH, HANG = 0, 1


def fault_of(hash_: str, modulus: int) -> int | None:
    """CRASH, HANG or None for the structure with ``hash_``."""
    rest = int(hash_[:8], 16) % modulus
    return rest if rest in (CRASH, HANG) else None


class FaultyEMT(EMT):
    def __init__(self, modulus: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.modulus = modulus

    def calculate(self, atoms=None, properties=("energy",), system_changes=None) -> None:
        fault = fault_of(structure_hash(atoms), self.modulus)
        if fault == CRASH:
            os._exit(11)
        if fault == HANG:
            time.sleep(3600)
        super().calculate(atoms, properties, system_changes or [])
        log = os.environ.get("PYACEMAKER_TEST_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(structure_hash(atoms) + "\n")
            fill_disk_once(int(os.environ.get("PYACEMAKER_TEST_FILL_AFTER", "0")), Path(log))


def fill_disk_once(after: int, log: Path) -> None:
    """Fill the file system of ``PYACEMAKER_TEST_FILL`` if its trigger exists and ``log``
    holds more than ``after`` calculations."""
    filler = os.environ.get("PYACEMAKER_TEST_FILL")
    if not filler or len(log.read_text().split()) <= after:
        return
    trigger = Path(filler + ".trigger")
    if not trigger.exists():
        return
    trigger.unlink()
    fill(Path(filler))


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its file system is full."""
    block = bytes(1 << 20)
    with open(path, "ab", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        try:  # the last partial block
            while True:
                fh.write(bytes(4096))
        except OSError:
            pass
