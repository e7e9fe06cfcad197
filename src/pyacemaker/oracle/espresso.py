"""Quantum ESPRESSO oracle: pw.x through ASE's Espresso calculator, healing its own failures.

Each attempt runs in its own folder (``<scratch>/<structure hash>/attempt_N``) with a timeout.
A failed attempt is classified from pw.x's output and retried one rung further along
``HEALING_LADDER``; after the last rung the structure is returned as a failed label (kept in the
dataset with its reason: quarantined) and the run goes on. Every attempt is recorded in the
label's settings.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.espresso import Espresso, EspressoProfile

from pyacemaker.config import OracleConfig
from pyacemaker.dataset import structure_hash
from pyacemaker.oracle.base import LabelResult

# Elements that are not metals (by the usual periodic-table line); any other element present
# makes the run use smearing.
NON_METALS = frozenset({"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar",
                        "Ge", "As", "Se", "Br", "Kr", "Sb", "Te", "I", "Xe", "At", "Rn"})
MAGNETIC = frozenset(["Cr", "Mn", "Fe", "Co", "Ni", "Gd"])
STARTING_MAGNETIZATION = 0.5
HEALING_LADDER: tuple[dict[str, Any], ...] = (
    {},
    {"electron_maxstep": 300, "mixing_beta": 0.3},
    {"electron_maxstep": 300, "mixing_beta": 0.1, "smearing_factor": 3.0},
    {"electron_maxstep": 500, "mixing_beta": 0.05, "smearing_factor": 5.0, "diagonalization": "cg"},
)
SCF_FAILED = re.compile(r"convergence NOT achieved", re.IGNORECASE)
ROUTINE_ERROR = re.compile(r"Error in routine\s+(\S+)\s*\(\s*(-?\d+)\s*\):\s*\n\s*(.*)")
OUTPUT = "espresso.pwo"


class TimedEspressoProfile(EspressoProfile):
    """ASE's profile with a timeout (ASE's own ``run`` waits forever)."""

    def __init__(self, command: str, pseudo_dir: Path, timeout_s: float) -> None:
        super().__init__(command=command, pseudo_dir=pseudo_dir)
        self.timeout_s = timeout_s

    def run(self, directory: Path, inputfile: str | None, outputfile: str,
            errorfile: str | None = None, append: bool = False) -> None:
        with open(directory / outputfile, "wb") as out:
            subprocess.run(self.get_command(inputfile), cwd=directory, stdout=out,
                           stderr=subprocess.STDOUT, timeout=self.timeout_s, check=True)


class EspressoOracle:
    """Labels structures with pw.x; ``scratch`` holds one folder per structure."""

    def __init__(self, settings: OracleConfig, scratch: Path) -> None:
        self.config = settings
        self.dft = settings.dft
        self.scratch = scratch
        self.settings: dict[str, Any] = settings.model_dump(mode="json", exclude={"workers"})

    def label(self, atoms: Atoms) -> LabelResult:
        """Energy (eV), forces (eV/Angstrom) and stress (eV/Angstrom^3), healing failures."""
        folder = self.scratch / structure_hash(atoms)[:16]
        if folder.exists():
            shutil.rmtree(folder)  # an interrupted earlier try of the same structure
        attempts: list[dict[str, Any]] = []
        start = time.perf_counter()
        for rung in range(self.dft.max_attempts):
            directory = folder / f"attempt_{rung}"
            input_data, kpts = self.input_for(atoms, rung)
            outcome = self._run(atoms, directory, input_data, kpts)
            attempts.append({"attempt": rung, "folder": str(directory),
                             "changes": HEALING_LADDER[rung], **outcome.get("log", {})})
            if "energy" in outcome:
                settings = {**self.settings, "input_data": input_data, "kpts": kpts,
                            "attempts": attempts}
                return LabelResult(ok=True, energy=outcome["energy"], forces=outcome["forces"],
                                   stress=outcome["stress"], seconds=time.perf_counter() - start,
                                   settings=settings)
        reasons = "; ".join(f"attempt {a['attempt']}: {a['failure']}" for a in attempts)
        return LabelResult(ok=False, reason=f"quarantined after {len(attempts)} attempts ({reasons})",
                           seconds=time.perf_counter() - start,
                           settings={**self.settings, "attempts": attempts})

    def input_for(self, atoms: Atoms, rung: int) -> tuple[dict[str, Any], list[int]]:
        """pw.x namelists and the k-point grid for ``atoms`` at healing ``rung``."""
        dft = self.dft
        elements = sorted(set(atoms.get_chemical_symbols()))
        change = dict(HEALING_LADDER[rung])
        system: dict[str, Any] = {"ecutwfc": dft.ecutwfc, "ecutrho": dft.ecutrho}
        metallic = any(e not in NON_METALS for e in elements)
        smearing_factor = change.pop("smearing_factor", None)
        if metallic or smearing_factor:
            system.update(occupations="smearing", smearing="mv",
                          degauss=dft.smearing_ry * (smearing_factor or 1.0))
        magnetic = [e for e in elements if e in MAGNETIC]
        if magnetic:
            system["nspin"] = 2
            for e in magnetic:
                system[f"starting_magnetization({elements.index(e) + 1})"] = STARTING_MAGNETIZATION
        input_data = {
            "control": {"calculation": "scf", "tprnfor": True, "tstress": True,
                        "disk_io": "low", "pseudo_dir": str(dft.pseudo_dir)},
            "system": system,
            "electrons": {"conv_thr": 1e-9 * len(atoms)},
        }
        for namelist, values in self.config.parameters.items():  # the user's own settings
            input_data.setdefault(namelist, {}).update(values)
        input_data["electrons"].update(change)  # the ladder overrides them
        return input_data, kpoint_grid(atoms, dft.kspacing)

    def _run(self, atoms: Atoms, directory: Path, input_data: dict[str, Any],
             kpts: list[int]) -> dict[str, Any]:
        """One pw.x run: the results, or ``log`` with the classified failure."""
        directory.mkdir(parents=True, exist_ok=True)
        calc = Espresso(
            profile=TimedEspressoProfile(self.dft.command, self.dft.pseudo_dir, self.dft.timeout_s),
            directory=directory, input_data=input_data, kpts=kpts,
            pseudopotentials={e: self.dft.pseudopotentials[e]
                              for e in set(atoms.get_chemical_symbols())},
        )
        work = atoms.copy()
        work.calc = calc
        started = time.perf_counter()
        try:
            energy = float(work.get_potential_energy())
            forces = work.get_forces()
            stress = work.get_stress(voigt=True)
        except subprocess.TimeoutExpired:
            return {"log": {"failure": f"timeout after {self.dft.timeout_s:g} s",
                            "seconds": time.perf_counter() - started}}
        except Exception as err:  # noqa: BLE001 - pw.x exit codes and parse errors are data
            failure = classify_failure(directory / OUTPUT, err)
            return {"log": {"failure": failure, "seconds": time.perf_counter() - started}}
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return {"log": {"failure": "non-finite energy or forces"}}
        return {"energy": energy, "forces": forces.tolist(), "stress": stress.tolist(),
                "log": {"seconds": time.perf_counter() - started}}


def classify_failure(output: Path, err: Exception) -> str:
    """Why pw.x failed, from its output: SCF not converged, ``Error in routine``, or a crash."""
    text = output.read_text(errors="replace") if output.is_file() else ""
    if SCF_FAILED.search(text):
        return "SCF not converged"
    if match := ROUTINE_ERROR.search(text):
        return f"Error in routine {match[1]} ({match[2]}): {match[3].strip()}"
    if isinstance(err, subprocess.CalledProcessError):
        return f"pw.x crashed (exit status {err.returncode})"
    return f"unreadable output ({type(err).__name__}: {err})"


def kpoint_grid(atoms: Atoms, kspacing: float) -> list[int]:
    """Monkhorst-Pack grid with at most ``kspacing`` (1/Angstrom, 2*pi included) between
    points along each reciprocal vector."""
    lengths = np.linalg.norm(atoms.cell.reciprocal(), axis=1) * 2 * math.pi
    return [max(1, math.ceil(length / kspacing)) for length in lengths]
