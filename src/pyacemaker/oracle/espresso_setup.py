"""Start-up of the Quantum ESPRESSO oracle: check pw.x and infer the DFT settings
(pseudopotentials, plane-wave cutoffs, k-point spacing); user values win."""

from __future__ import annotations

from pyacemaker.config import DftConfig, OracleConfig
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.cutoffs import converged_ecutwfc
from pyacemaker.oracle.pseudopotentials import choose_pseudopotentials
from pyacemaker.oracle.startup import default_kspacing, require_executable


def resolve_espresso(oracle: OracleConfig, elements: list[str]) -> OracleConfig:
    """``oracle`` with its ``dft`` settings inferred (user values win); raises ConfigError when
    pw.x, a pseudopotential or the namelists in ``parameters`` are wrong."""
    for namelist, values in oracle.parameters.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"field 'oracle.parameters.{namelist}': for espresso, give pw.x namelists "
                "as mappings, e.g. 'parameters: {{system: {{nbnd: 20}}}}'")
    return oracle.model_copy(update={"dft": _resolve_dft(oracle.dft, elements)})


def _resolve_dft(dft: DftConfig, elements: list[str]) -> DftConfig:
    """Check the pw.x command and pick pseudopotentials and cutoffs (user values win)."""
    require_executable(dft.command, "oracle.dft.command", "install Quantum ESPRESSO "
                       "(`apt-get install quantum-espresso`) or give the full path")
    folder = dft.pseudo_dir.resolve() if dft.pseudo_dir else None
    chosen = choose_pseudopotentials(elements, folder)
    if dft.pseudopotentials:
        unknown = sorted(set(elements) - set(dft.pseudopotentials))
        if unknown:
            raise ConfigError(f"field 'oracle.dft.pseudopotentials': no file for "
                              f"{', '.join(unknown)}")
    files = dft.pseudopotentials or chosen.files
    absent = sorted(f for f in files.values() if not (chosen.folder / f).is_file())
    if absent:
        raise ConfigError(f"field 'oracle.dft.pseudopotentials': {', '.join(absent)} not in "
                          f"{chosen.folder}")
    dft = dft.model_copy(update={
        "pseudo_dir": chosen.folder, "pseudopotentials": {e: files[e] for e in elements},
        "kspacing": dft.kspacing or default_kspacing(elements)})
    ecutwfc = dft.ecutwfc or chosen.ecutwfc or _measured_ecutwfc(dft, elements)
    return dft.model_copy(update={
        "ecutwfc": ecutwfc, "ecutrho": dft.ecutrho or max(chosen.ecutrho or 0.0, 4 * ecutwfc)})


def _measured_ecutwfc(dft: DftConfig, elements: list[str]) -> float:
    """The largest converged cutoff (Ry) over the elements' files (pw.x tests, cached)."""
    return max(converged_ecutwfc(e, dft).ecutwfc for e in elements)
