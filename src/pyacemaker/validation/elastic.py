"""Elastic stiffness tensor by finite strains, with Born stability and Voigt-Reuss-Hill moduli."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import spglib
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import GPa
from pydantic import BaseModel, Field

from pyacemaker.errors import CalculationFailed
from pyacemaker.structures import VOIGT, voigt_strained
from pyacemaker.validation.relax import relaxed

SYSTEMS = [(2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
           (167, "trigonal"), (194, "hexagonal"), (230, "cubic")]


class ElasticResult(BaseModel):
    """Elastic constants of a relaxed structure and what they say about its stability."""

    c_gpa: list[list[float]] = Field(description="6x6 Voigt stiffness C_ij in GPa, order xx yy zz yz xz "
                                     "xy, engineering shear strains, symmetrised, in the input frame")
    eigenvalues_gpa: list[float] = Field(description="the 6 eigenvalues of the Voigt matrix C in GPa, "
                                           "ascending (their signs, not values, are frame independent)")
    born_stable: bool = Field(description="all eigenvalues of C > 0 (Born criterion, any symmetry)")
    crystal_system: str = Field(description="crystal system of the input from spglib, e.g. 'cubic'")
    conditions: dict[str, bool] = Field(description="closed-form Born conditions of the crystal system, "
                                        "on C in spglib's standard frame -> satisfied; empty below "
                                        "orthorhombic and for trigonal; diagnostics only")
    bulk_voigt_gpa: float = Field(description="Voigt bulk modulus in GPa")
    bulk_reuss_gpa: float | None = Field(description="Reuss bulk modulus in GPa; None when C is singular")
    bulk_hill_gpa: float | None = Field(description="Hill bulk modulus in GPa; None when C is singular")
    shear_voigt_gpa: float = Field(description="Voigt shear modulus in GPa")
    shear_reuss_gpa: float | None = Field(description="Reuss shear modulus in GPa; None when C is singular")
    shear_hill_gpa: float | None = Field(description="Hill shear modulus in GPa; None when C is singular")
    max_residual_force: float = Field(description="largest atomic force left after the ionic "
                                      "relaxations of the strained cells, eV/Angstrom")


def _crystal_system(atoms: Atoms, symprec: float) -> tuple[str, np.ndarray]:
    """Crystal system name and the 3x3 rotation from the input to spglib's standard Cartesian frame."""
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():  # spglib 2.x deprecation notice about error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            data = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except spglib.SpglibError:  # newer spglib raises instead of returning None
            data = None
    if data is None:
        return "triclinic", np.eye(3)
    return next(name for last, name in SYSTEMS if data.number <= last), np.asarray(data.std_rotation_matrix)


def _rotated(c: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Voigt stiffness ``c`` (6, 6) expressed in the frame x' = rot @ x, ``rot`` of shape (3, 3)."""
    full = np.zeros((3, 3, 3, 3))
    for i, (a, b) in enumerate(VOIGT):
        for j, (k, m) in enumerate(VOIGT):
            for p, q, r, s in {(a, b, k, m), (b, a, k, m), (a, b, m, k), (b, a, m, k)}:
                full[p, q, r, s] = c[i, j]
    full = np.einsum("ai,bj,ck,dl,ijkl->abcd", rot, rot, rot, rot, full)
    return np.array([[full[a, b, k, m] for k, m in VOIGT] for a, b in VOIGT])


def born_conditions(c: np.ndarray, system: str) -> dict[str, bool]:
    """Closed-form Born conditions (Mouhat & Coudert 2014) for ``c`` (6, 6), GPa, standard frame."""
    c11, c12, c13, c22, c33 = c[0, 0], c[0, 1], c[0, 2], c[1, 1], c[2, 2]
    c44, c66 = c[3, 3], c[5, 5]
    if system == "cubic":
        return {"C11 - C12 > 0": bool(c11 - c12 > 0), "C11 + 2 C12 > 0": bool(c11 + 2 * c12 > 0),
                "C44 > 0": bool(c44 > 0)}
    if system in ("hexagonal", "tetragonal"):
        return {"C11 - |C12| > 0": bool(c11 - abs(c12) > 0),
                "2 C13^2 < C33 (C11 + C12)": bool(2 * c13**2 < c33 * (c11 + c12)),
                "C44 > 0": bool(c44 > 0), "C66 > 0": bool(c66 > 0)}
    if system == "orthorhombic":
        out = {f"C{i}{i} > 0": bool(c[i - 1, i - 1] > 0) for i in range(1, 7)}
        out["C11 C22 > C12^2"] = bool(c11 * c22 > c12**2)
        out["det(C11..C33 block) > 0"] = bool(np.linalg.det(c[:3, :3]) > 0)
        return out
    return {}


def _moduli(c: np.ndarray) -> dict[str, float | None]:
    """Voigt, Reuss and Hill bulk and shear moduli of ``c`` (6, 6), in the units of ``c``."""
    kv = (np.trace(c[:3, :3]) + 2 * (c[0, 1] + c[0, 2] + c[1, 2])) / 9
    gv = (np.trace(c[:3, :3]) - (c[0, 1] + c[0, 2] + c[1, 2]) + 3 * np.trace(c[3:, 3:])) / 15
    out: dict[str, float | None] = {"bulk_voigt_gpa": float(kv), "shear_voigt_gpa": float(gv)}
    kr = gr = None
    if np.linalg.cond(c) < 1e12:
        s = np.linalg.inv(c)
        kr = float(1 / (np.trace(s[:3, :3]) + 2 * (s[0, 1] + s[0, 2] + s[1, 2])))
        gr = float(15 / (4 * np.trace(s[:3, :3]) - 4 * (s[0, 1] + s[0, 2] + s[1, 2])
                         + 3 * np.trace(s[3:, 3:])))
    out |= {"bulk_reuss_gpa": kr, "shear_reuss_gpa": gr,
            "bulk_hill_gpa": None if kr is None else float((kv + kr) / 2),
            "shear_hill_gpa": None if gr is None else float((gv + gr) / 2)}
    return out


def elastic_strains(largest: float) -> tuple[float, ...]:
    """The four strains of :func:`elastic_tensor` for a largest strain ``largest``."""
    return (-largest, -largest / 2, largest / 2, largest)


def elastic_tensor(atoms: Atoms, calc: Calculator, strains: Sequence[float] = (-0.01, -0.005, 0.005, 0.01),
                   fmax: float = 1e-3, progress: Callable[[int, int], None] | None = None,
                   symprec: float = 1e-3) -> ElasticResult:
    """Elastic tensor of ``atoms`` (already relaxed, cell and positions) from stress-strain slopes.

    Each of the 6 Voigt strains (shears as engineering strains, e4 = 2 eps_yz) is applied at every
    magnitude in ``strains`` (dimensionless, at least two distinct values), the ions are relaxed at
    fixed cell to ``fmax`` (eV/Angstrom) and C_ij is the least-squares slope of stress_i against
    strain_j. ``atoms`` is not modified. ``progress(done, total)`` is called after each relaxation;
    ``symprec`` (Angstrom) is spglib's tolerance for the crystal system.

    Raises ``ValueError`` for fewer than two distinct strains and ``CalculationFailed`` when the
    calculator returns a non-finite stress.
    """
    strains = [float(e) for e in strains]
    if len(set(strains)) < 2:
        raise ValueError(f"need at least two distinct strains to fit a slope, got {strains}")
    total, done, max_force = 6 * len(strains), 0, 0.0
    c = np.zeros((6, 6))
    for j in range(6):
        stresses = []
        for e in strains:
            out = relaxed(voigt_strained(atoms, j, e), calc, cell=False, fmax=fmax)
            stress = out.get_stress(voigt=True)
            if not np.all(np.isfinite(stress)):
                raise CalculationFailed(f"non-finite stress {stress} at Voigt strain e{j + 1} = {e}")
            max_force = max(max_force, float(np.linalg.norm(out.get_forces(), axis=1).max(initial=0.0)))
            stresses.append(stress / GPa)
            done += 1
            if progress is not None:
                progress(done, total)
        c[:, j] = np.polyfit(strains, np.array(stresses), 1)[0]
    c = (c + c.T) / 2
    system, rot = _crystal_system(atoms, symprec)
    return ElasticResult(c_gpa=c.tolist(), eigenvalues_gpa=np.linalg.eigvalsh(c).tolist(),
                         born_stable=bool(np.all(np.linalg.eigvalsh(c) > 0)), crystal_system=system,
                         conditions=born_conditions(_rotated(c, rot), system),
                         max_residual_force=max_force, **_moduli(c))
