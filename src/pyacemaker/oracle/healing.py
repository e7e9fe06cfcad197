"""File-based reference codes that heal their own failures (Quantum ESPRESSO, VASP).

An oracle here runs each attempt in its own folder (``<scratch>/<hash>-XXXX/attempt_N``, a
fresh folder of its own that it removes afterwards). A failed attempt is classified and retried
one rung further along the code's ladder of safer settings; after ``max_attempts`` the
structure comes back as a failed label (kept in the dataset with its reasons: quarantined) and
the run goes on. Every attempt is recorded, and the files worth keeping (``kept_files``) come
back gzip-compressed in the result as ``<hash>/attempt_N/<name>.gz``: the driver stores them.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pyacemaker.dataset import structure_hash
from pyacemaker.records import LabelResult


@dataclass
class Attempt:
    """One run of the code: results (eV, eV/Angstrom, eV/Angstrom^3 Voigt) or a failure."""

    failure: str | None = None
    energy: float | None = None
    forces: list[list[float]] | None = None
    stress: list[float] | None = None


class HealingOracle(ABC):
    """Labels structures with a file-based code along ``ladder`` (rung 0: the settings as
    configured; later rungs: ever safer changes)."""

    ladder: tuple[dict[str, Any], ...] = ({},)
    kept_files: tuple[str, ...] = ()  # inputs and outputs kept for inspection, per attempt

    def __init__(self, settings: dict[str, Any], scratch: Path, max_attempts: int) -> None:
        self.settings = settings
        self.scratch = scratch
        self.max_attempts = min(max_attempts, len(self.ladder))

    @abstractmethod
    def inputs(self, atoms: Atoms, rung: int) -> dict[str, Any]:
        """The code's settings for ``atoms`` at ``rung`` (recorded with the label)."""

    @abstractmethod
    def attempt(self, atoms: Atoms, directory: Path, inputs: dict[str, Any]) -> Attempt:
        """Run the code once in ``directory``; never raises for a failed calculation."""

    def label(self, atoms: Atoms) -> LabelResult:
        """Energy, forces and stress, healing failures; a failure after the ladder is data."""
        name = structure_hash(atoms)[:16]
        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"pyacemaker-{name}-", dir=self.scratch))
        try:
            result = self._label(atoms, folder, name)
            result.logs = self.kept(folder, name)
        finally:
            shutil.rmtree(folder)
        return result

    def kept(self, folder: Path, name: str) -> dict[str, bytes]:
        """The ``kept_files`` of every attempt in ``folder``, gzip-compressed, keyed
        ``<name>/attempt_N/<file>.gz``."""
        return {f"{name}/{path.parent.name}/{path.name}.gz": gzip.compress(path.read_bytes())
                for path in sorted(folder.glob("attempt_*/*")) if path.name in self.kept_files}

    def _label(self, atoms: Atoms, folder: Path, name: str) -> LabelResult:
        attempts: list[dict[str, Any]] = []
        start = time.perf_counter()
        for rung in range(self.max_attempts):
            directory = folder / f"attempt_{rung}"
            directory.mkdir(parents=True)
            inputs = self.inputs(atoms, rung)
            began = time.perf_counter()
            outcome = self.attempt(atoms, directory, inputs)
            if outcome.failure is None and not (
                    np.isfinite(outcome.energy) and np.all(np.isfinite(outcome.forces))):
                outcome = Attempt(failure="non-finite energy or forces")
            attempts.append({"attempt": rung, "folder": f"{name}/attempt_{rung}",
                             "changes": self.ladder[rung], "failure": outcome.failure,
                             "seconds": round(time.perf_counter() - began, 3)})
            if outcome.failure is None:
                results = {k: v for k, v in asdict(outcome).items() if k != "failure"}
                return LabelResult(ok=True, **results, seconds=time.perf_counter() - start,
                                   settings={**self.settings, **inputs, "attempts": attempts})
        reasons = "; ".join(f"attempt {a['attempt']}: {a['failure']}" for a in attempts)
        return LabelResult(ok=False, reason=f"quarantined after {len(attempts)} attempts ({reasons})",
                           seconds=time.perf_counter() - start,
                           settings={**self.settings, "attempts": attempts})
