"""Quantum ESPRESSO oracle: pw.x through ASE's Espresso calculator, healing its own failures.

Each attempt runs with a timeout; a failure is classified from pw.x's output (SCF not converged,
``Error in routine``, crash, timeout) and retried along ``HEALING_LADDER`` (see
``healing.HealingOracle``). The start-up checks and inferred settings are in
``espresso_setup``.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.espresso import Espresso, EspressoProfile

from pyacemaker.composition import MAGNETIC
from pyacemaker.config import OracleConfig
from pyacemaker.oracle.healing import Attempt, HealingOracle
from pyacemaker.oracle.registry import recorded_settings
from pyacemaker.structures import vacuum_gap

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
# SCF threshold, Ry per atom: on rattled and defective 8-atom Si cells (45 Ry, 3x3x3-5x5x5 k)
# 1e-8 gives forces within 5e-4 eV/A, stress within 0.002 GPa and energies within 1e-4
# meV/atom of 1e-9's, in 6-18% less time on two of three cells
CONV_THR_PER_ATOM = 1e-8
SLAB_GAP = 4.0  # Angstrom of empty cell that makes a structure a slab: local-TF charge mixing


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


class EspressoOracle(HealingOracle):
    """Labels structures with pw.x in folders under ``scratch`` (a local folder)."""

    ladder = HEALING_LADDER
    kept_files = ("espresso.pwi", OUTPUT)

    def __init__(self, settings: OracleConfig, scratch: Path) -> None:
        super().__init__(recorded_settings(settings), scratch,
                         settings.dft.max_attempts)
        self.config = settings
        self.dft = settings.dft

    def inputs(self, atoms: Atoms, rung: int) -> dict[str, Any]:
        """pw.x namelists (``input_data``) and the k-point grid (``kpts``) at ``rung``."""
        dft = self.dft
        elements = sorted(set(atoms.get_chemical_symbols()))
        change = dict(self.ladder[rung])
        system: dict[str, Any] = {"ecutwfc": dft.ecutwfc, "ecutrho": dft.ecutrho}
        # smearing always: slabs, vacancies and hot frames of a semiconductor can be metallic
        # (Si slabs with fixed occupations stalled at 1e-7 Ry for 400 SCF steps)
        system.update(occupations="smearing", smearing="mv",
                      degauss=dft.smearing_ry * change.pop("smearing_factor", 1.0))
        magnetic = [e for e in elements if e in MAGNETIC]
        if magnetic:
            system["nspin"] = 2
            for e in magnetic:
                system[f"starting_magnetization({elements.index(e) + 1})"] = STARTING_MAGNETIZATION
        electrons: dict[str, Any] = {"conv_thr": CONV_THR_PER_ATOM * len(atoms)}
        if vacuum_gap(atoms) > SLAB_GAP:  # plain mixing sloshes charge across the vacuum
            electrons["mixing_mode"] = "local-TF"
        input_data = {
            "control": {"calculation": "scf", "tprnfor": True, "tstress": True,
                        "disk_io": "low", "pseudo_dir": str(dft.pseudo_dir)},
            "system": system,
            "electrons": electrons,
        }
        for namelist, values in self.config.parameters.items():  # the user's own settings
            input_data.setdefault(namelist, {}).update(values)
        input_data["electrons"].update(change)  # the ladder overrides them
        return {"input_data": input_data, "kpts": kpoint_grid(atoms, dft.kspacing)}

    def attempt(self, atoms: Atoms, directory: Path, inputs: dict[str, Any]) -> Attempt:
        calc = Espresso(
            profile=TimedEspressoProfile(self.dft.command, self.dft.pseudo_dir, self.dft.timeout_s),
            directory=directory, **inputs,
            pseudopotentials={e: self.dft.pseudopotentials[e]
                              for e in set(atoms.get_chemical_symbols())},
        )
        work = atoms.copy()
        work.calc = calc
        try:
            return Attempt(energy=float(work.get_potential_energy()),
                           forces=work.get_forces().tolist(),
                           stress=work.get_stress(voigt=True).tolist())
        except subprocess.TimeoutExpired:
            return Attempt(failure=f"timeout after {self.dft.timeout_s:g} s")
        except Exception as err:  # noqa: BLE001 - pw.x exit codes and parse errors are data
            return Attempt(failure=classify_failure(directory / OUTPUT, err))


def classify_failure(output: Path, err: Exception) -> str:
    """Why pw.x failed, from its output: SCF not converged, ``Error in routine``, or a crash."""
    text = output.read_text(errors="replace") if output.is_file() else ""
    if SCF_FAILED.search(text):
        return "SCF not converged"
    if match := ROUTINE_ERROR.search(text):
        return f"Error in routine {match[1]} ({match[2]}): {match[3].strip()}"
    if isinstance(err, subprocess.CalledProcessError):
        return f"pw.x crashed (exit status {err.returncode})"
    state = "truncated or unreadable" if text else "missing"
    return f"pw.x output {output.name} {state} ({type(err).__name__}: {err})"


def kpoint_grid(atoms: Atoms, kspacing: float) -> list[int]:
    """Monkhorst-Pack grid with at most ``kspacing`` (1/Angstrom, 2*pi included) between
    points along each reciprocal vector."""
    lengths = np.linalg.norm(atoms.cell.reciprocal(), axis=1) * 2 * math.pi
    return [max(1, math.ceil(length / kspacing)) for length in lengths]
