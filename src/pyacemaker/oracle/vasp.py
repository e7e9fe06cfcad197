"""VASP oracle: INCAR/KPOINTS/POSCAR/POTCAR written by ASE, VASP run as a subprocess (argument
list, timeout), results read from ``vasprun.xml``; failures heal along ``HEALING_LADDER``.
At start-up, ``resolve_vasp`` checks the command and the POTCARs.

No VASP binary can be installed here, so its tests cover input writing, parsing of real VASP
output and failure classification; the docs say so.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.vasp import Vasp
from ase.calculators.vasp.setups import get_default_setups
from ase.io import read

from pyacemaker.composition import MAGNETIC, has_metal
from pyacemaker.config import OracleConfig
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.healing import Attempt, HealingOracle
from pyacemaker.oracle.registry import recorded_settings
from pyacemaker.oracle.startup import default_kspacing, require_executable

POTCAR_FOLDER = "potpaw_PBE"
HEALING_LADDER: tuple[dict[str, Any], ...] = (
    {},
    {"nelm": 200, "amix": 0.2, "bmix": 0.0001},
    {"nelm": 200, "algo": "All", "amix": 0.1, "sigma_factor": 3.0},
    {"nelm": 300, "algo": "Damped", "time": 0.1, "sigma_factor": 5.0},
)
SCF_FAILED = re.compile(r"EDIFF was not reached|aborting loop.*unconverged", re.IGNORECASE)
VASP_ERROR = re.compile(r"(ZBRENT|EDDDAV|EDWAV|VERY BAD NEWS|internal error|ERROR)[^\n]*")


def potcar_paths(elements: list[str], pp_path: Path, setups: str) -> dict[str, Path]:
    """The POTCAR of each element for ASE's ``setups`` name (``potpaw_PBE/<El><suffix>``)."""
    suffixes = get_default_setups().get(setups.lower(), {})
    return {e: pp_path / POTCAR_FOLDER / f"{e}{suffixes.get(e, '')}" / "POTCAR" for e in elements}


def resolve_vasp(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` with its ``vasp`` settings completed (``pp_path`` from $VASP_PP_PATH, k-point
    spacing); raises ConfigError when the VASP command or a POTCAR is missing."""
    vasp = oracle.vasp
    require_executable(vasp.command, "oracle.vasp.command", "give the full path to VASP (it "
                       "cannot be installed from a package registry)")
    pp_path = vasp.pp_path or (Path(os.environ["VASP_PP_PATH"]) if os.environ.get(
        "VASP_PP_PATH") else None)
    if pp_path is None:
        raise ConfigError("field 'oracle.vasp.pp_path': not set and $VASP_PP_PATH is empty; "
                          "point it at the folder that holds potpaw_PBE/")
    missing = [f"{e} ({p})" for e, p in potcar_paths(elements, pp_path.resolve(), vasp.setups).items()
               if not p.is_file()]
    if missing:
        raise ConfigError(f"field 'oracle.vasp.pp_path': no POTCAR for {', '.join(missing)}")
    return oracle.model_copy(update={"vasp": vasp.model_copy(update={
        "pp_path": pp_path.resolve(), "kspacing": vasp.kspacing or default_kspacing(elements)})})


class VaspOracle(HealingOracle):
    """Labels structures with VASP in folders under ``scratch`` (a local folder)."""

    ladder = HEALING_LADDER
    kept_files = ("INCAR", "KPOINTS", "OSZICAR", "OUTCAR", "vasp.out")

    def __init__(self, settings: OracleConfig, scratch: Path) -> None:
        super().__init__(recorded_settings(settings), scratch,
                         settings.vasp.max_attempts)
        self.config = settings
        self.vasp = settings.vasp

    def inputs(self, atoms: Atoms, rung: int) -> dict[str, Any]:
        """INCAR tags (ASE keyword names) at ``rung``; the user's ``parameters`` are applied
        before the ladder's changes."""
        v = self.vasp
        elements = sorted(set(atoms.get_chemical_symbols()))
        metallic = has_metal(elements)
        incar: dict[str, Any] = {
            "xc": "PBE", "setups": v.setups, "encut": v.encut, "kspacing": v.kspacing,
            "kgamma": True, "ismear": 1 if metallic else 0, "sigma": 0.1 if metallic else 0.05,
            "ediff": 1e-6 * len(atoms), "nelm": 100, "prec": "Accurate", "lreal": False,
            "lwave": False, "lcharg": False, "isym": 0,
        }
        if any(e in MAGNETIC for e in elements):
            incar["ispin"] = 2
            incar["magmom"] = [3.0 if s in MAGNETIC else 0.0 for s in atoms.get_chemical_symbols()]
        incar.update(self.config.parameters)
        change = dict(self.ladder[rung])
        incar["sigma"] *= change.pop("sigma_factor", 1.0)
        incar.update(change)
        return {"incar": incar}

    def write_inputs(self, atoms: Atoms, directory: Path, inputs: dict[str, Any]) -> None:
        """INCAR, POSCAR, POTCAR (and KPOINTS if needed) in ``directory``."""
        calc = Vasp(directory=str(directory), pp=str(self.vasp.pp_path / POTCAR_FOLDER),
                    **inputs["incar"])
        calc.write_input(atoms)

    def attempt(self, atoms: Atoms, directory: Path, inputs: dict[str, Any]) -> Attempt:
        self.write_inputs(atoms, directory, inputs)
        try:
            with open(directory / "vasp.out", "w") as out:
                subprocess.run(shlex.split(self.vasp.command), cwd=directory, stdout=out,
                               stderr=subprocess.STDOUT, timeout=self.vasp.timeout_s, check=True)
        except subprocess.TimeoutExpired:
            return Attempt(failure=f"timeout after {self.vasp.timeout_s:g} s")
        except subprocess.CalledProcessError as err:
            return Attempt(failure=classify_failure(directory) or
                           f"VASP crashed (exit status {err.returncode})")
        return read_results(directory)


def read_results(directory: Path) -> Attempt:
    """Free energy (eV), forces (eV/Angstrom) and stress (eV/Angstrom^3) from
    ``vasprun.xml``, or the failure found in OUTCAR and the VASP output."""
    failure = classify_failure(directory)
    if failure:
        return Attempt(failure=failure)
    try:
        final = read(directory / "vasprun.xml", format="vasp-xml", index=-1)
        return Attempt(energy=float(final.get_potential_energy(force_consistent=True)),
                       forces=final.get_forces().tolist(),
                       stress=final.get_stress(voigt=True).tolist())
    except Exception as err:  # noqa: BLE001 - a truncated or missing file is a failure
        return Attempt(failure=f"unreadable vasprun.xml ({type(err).__name__}: {err})")


def classify_failure(directory: Path) -> str | None:
    """SCF not converged (OUTCAR), or the first VASP error message (its output); None if
    neither is found."""
    outcar = directory / "OUTCAR"
    if outcar.is_file() and SCF_FAILED.search(outcar.read_text(errors="replace")):
        return "SCF not converged"
    output = directory / "vasp.out"
    if output.is_file() and (match := VASP_ERROR.search(output.read_text(errors="replace"))):
        return f"VASP error: {match[0].strip()}"
    return None
