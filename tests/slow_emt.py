"""A stand-in for an expensive oracle, used by the kill-and-resume tests: ASE's EMT with a
delay per calculation, logging the hash of every finished calculation to the file named by
``PYACEMAKER_TEST_LOG`` so a test can count what was computed."""

from __future__ import annotations

import os
import time

from ase.calculators.emt import EMT

from pyacemaker.dataset import structure_hash


class SlowEMT(EMT):
    def __init__(self, delay: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def calculate(self, atoms=None, properties=("energy",), system_changes=None) -> None:
        if system_changes is None:
            super().calculate(atoms, properties)
        else:
            super().calculate(atoms, properties, system_changes)
        time.sleep(self.delay)
        log = os.environ.get("PYACEMAKER_TEST_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(structure_hash(self.atoms) + "\n")
