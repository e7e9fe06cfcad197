"""The potential against a cheap oracle, property by property, each at its OWN equilibrium:
relaxed lattice, bulk modulus, elastic constants and phonons; the numbers and the checks."""

from __future__ import annotations

import numpy as np
from phonopy import Phonopy
from pydantic import BaseModel, Field

from pyacemaker.validation.check import Check
from pyacemaker.validation.elastic import ElasticResult
from pyacemaker.validation.eos import EosResult
from pyacemaker.validation.phonons import PhononResult, frequencies_at, imaginary_rows, reciprocal_cell
from pyacemaker.validation.reach import ReachLimited
from pyacemaker.validation.reference import RelaxedStructure

LATTICE_NAMES = ["a", "b", "c", "volume"]
ELASTIC_PAIRS = [(i, j) for i in range(6) for j in range(i, 6)]  # the 21 independent C_ij
ELASTIC_FLOOR = 0.1  # near-zero C_ij are compared on 0.1 x the mean of C11, C22, C33
COMPARED = ("lattice vs oracle", "bulk modulus vs oracle", "elastic constants vs oracle")


class LatticeComparison(BaseModel):
    """Relaxed lattice of the potential and of the oracle, each relaxed with its own forces."""

    names: list[str] = Field(default_factory=lambda: list(LATTICE_NAMES))
    potential: list[float] = Field(description="a, b, c (Angstrom) and volume (Angstrom^3/atom)")
    oracle: list[float] = Field(description="a, b, c (Angstrom) and volume (Angstrom^3/atom)")
    relative: list[float] = Field(description="potential over oracle, minus 1, per quantity")


class ElasticComparison(BaseModel):
    """The 21 independent elastic constants of the potential and the oracle."""

    components: list[str] = Field(description="C11, C12, ..., C66 (Voigt)")
    potential_gpa: list[float] = Field(description="GPa")
    oracle_gpa: list[float] = Field(description="GPa")
    floor_gpa: float = Field(description="0.1 x mean of the oracle's C11, C22, C33, GPa")
    scale_gpa: list[float] = Field(description="max(|C_ij oracle|, floor_gpa), GPa: what each "
                                   "deviation is relative to")
    deviation: list[float] = Field(description="(C_ij potential - C_ij oracle) / scale_gpa")
    worst: str = Field(description="the component with the largest |deviation|")


class PhononDeviation(BaseModel):
    """Potential minus oracle frequencies on the oracle's q-points, sorted per q-point."""

    mesh_rms_thz: float = Field(description="RMS over the oracle's mesh (q-points weighted by their "
                                "multiplicity) and all bands, THz")
    mesh_max_thz: float = Field(description="largest |difference| on the mesh, THz")
    path_rms_thz: float = Field(description="RMS along the band path, THz")
    path_max_thz: float = Field(description="largest |difference| along the band path, THz")
    oracle_worst_q: list[float] | None = Field(None, description="the oracle's most imaginary "
                                               "q-point, fractional (primitive reciprocal basis)")
    oracle_worst_thz: float | None = Field(None, description="the oracle's lowest frequency there, THz")
    potential_at_oracle_worst_thz: float | None = Field(
        None, description="the potential's lowest frequency at the oracle's worst q-point, THz")
    potential_imaginary_at_oracle_worst: bool | None = Field(
        None, description="that frequency is imaginary by the potential's own tolerances")


class OracleComparison(BaseModel):
    """What was compared with the oracle (None: not computed)."""

    lattice: LatticeComparison | None = None
    elastic: ElasticComparison | None = None
    phonons: PhononDeviation | None = Field(None, description="the graded one: against the oracle "
                                           "restricted to the potential's reach when known")
    phonons_full: PhononDeviation | None = Field(None, description="against the full oracle (shown)")
    phonon_reach: ReachLimited | None = Field(None, description="the oracle restricted to the reach")


def compare_lattice(potential: RelaxedStructure, oracle: RelaxedStructure) -> LatticeComparison:
    """Relative differences of the relaxed a, b, c and volume per atom."""
    mine = [*potential.cell_parameters[:3], potential.volume_per_atom]
    theirs = [*oracle.cell_parameters[:3], oracle.volume_per_atom]
    return LatticeComparison(potential=mine, oracle=theirs,
                             relative=[p / o - 1.0 for p, o in zip(mine, theirs, strict=True)])


def compare_elastic(potential: ElasticResult, oracle: ElasticResult) -> ElasticComparison:
    """Every independent C_ij, each deviation relative to max(|C_ij oracle|, 0.1 x mean of the
    oracle's C11, C22, C33), so that near-zero components do not blow the ratio up."""
    mine, theirs = np.array(potential.c_gpa), np.array(oracle.c_gpa)
    floor = ELASTIC_FLOOR * abs(float(np.mean(np.diag(theirs)[:3])))
    p = np.array([mine[i, j] for i, j in ELASTIC_PAIRS])
    o = np.array([theirs[i, j] for i, j in ELASTIC_PAIRS])
    scale = np.maximum(np.abs(o), max(floor, 1e-6))
    deviation = (p - o) / scale
    names = [f"C{i + 1}{j + 1}" for i, j in ELASTIC_PAIRS]
    return ElasticComparison(components=names, potential_gpa=p.tolist(), oracle_gpa=o.tolist(),
                             floor_gpa=floor, scale_gpa=scale.tolist(), deviation=deviation.tolist(),
                             worst=names[int(np.argmax(np.round(np.abs(deviation), 6)))])  # first of ties


def compare_phonons(phonon: Phonopy, potential: PhononResult, oracle: PhononResult) -> PhononDeviation:
    """Frequencies of the potential's ``phonon`` model (force constants) against ``oracle`` on its
    mesh q-points, along the common band path and at the oracle's worst imaginary q-point.

    Raises
    ------
    ValueError
        The two primitive cells, band counts or band paths differ: nothing to compare q by q.
    """
    if not np.allclose(potential.primitive_matrix, oracle.primitive_matrix, atol=1e-6):
        raise ValueError(f"the potential's primitive cell {potential.primitive_matrix} differs from "
                         f"the oracle's {oracle.primitive_matrix} (symmetry lost in the relaxation)")
    mesh_oracle = np.sort(np.array(oracle.mesh_frequencies_thz), axis=1)
    mesh = frequencies_at(phonon, np.array(oracle.mesh_qpoints))
    path_oracle = np.sort(np.concatenate(oracle.frequencies_thz), axis=1)
    path = np.sort(np.concatenate(potential.frequencies_thz), axis=1)
    if mesh.shape != mesh_oracle.shape or path.shape != path_oracle.shape:
        raise ValueError(f"band counts or paths differ: mesh {mesh.shape} vs {mesh_oracle.shape}, "
                         f"path {path.shape} vs {path_oracle.shape}")
    weights = np.array(oracle.mesh_weights, float)[:, None]
    mesh_diff, path_diff = mesh - mesh_oracle, path - path_oracle
    out = PhononDeviation(
        mesh_rms_thz=float(np.sqrt(np.sum(weights * mesh_diff**2) / (weights.sum() * mesh.shape[1]))),
        mesh_max_thz=float(np.abs(mesh_diff).max()), path_rms_thz=float(np.sqrt(np.mean(path_diff**2))),
        path_max_thz=float(np.abs(path_diff).max()))
    if not oracle.imaginary:
        return out
    q, worst = oracle.imaginary[0]
    there = frequencies_at(phonon, np.array([q]))
    imaginary = imaginary_rows(np.array([q]), there, reciprocal_cell(phonon), potential.tolerance_thz,
                               potential.acoustic_tolerance_thz, potential.gamma_radius)
    return out.model_copy(update={
        "oracle_worst_q": list(q), "oracle_worst_thz": worst,
        "potential_at_oracle_worst_thz": float(there.min()),
        "potential_imaginary_at_oracle_worst": bool(imaginary[0])})


def not_applicable(name: str, threshold: str, reason: str) -> Check:
    """A check that could not be made, with the reason."""
    return Check(name=name, passed=None, value="not computed", threshold=threshold, detail=reason)


def lattice_threshold(tolerance: float) -> str:
    return f"|Δ| ≤ {100 * tolerance:g}% for a, b, c and volume"


def lattice_check(comparison: LatticeComparison, tolerance: float, oracle_force: float) -> Check:
    """Passes when every relative difference of a, b, c and volume is within ``tolerance``."""
    k = int(np.argmax(np.abs(comparison.relative)))
    unit = "Å³/atom" if comparison.names[k] == "volume" else "Å"
    return Check(
        name="lattice vs oracle", passed=bool(np.all(np.abs(comparison.relative) <= tolerance)),
        value=f"{comparison.names[k]} {100 * comparison.relative[k]:+.2f}% "
              f"({comparison.potential[k]:.4f} vs {comparison.oracle[k]:.4f} {unit})",
        threshold=lattice_threshold(tolerance),
        detail="each relaxed (cell and ions) with its own forces: " + ", ".join(
            f"{n} {100 * r:+.2f}%" for n, r in zip(comparison.names, comparison.relative, strict=True))
        + f"; oracle relaxed to {oracle_force:.1g} eV/Å")


def bulk_modulus_threshold(tolerance: float) -> str:
    return f"±{100 * tolerance:g}%"


def bulk_modulus_check(model: EosResult, oracle: EosResult, tolerance: float) -> Check:
    """Passes when the two B0, each fitted around its own minimum, agree within ``tolerance``."""
    name, threshold = "bulk modulus vs oracle", bulk_modulus_threshold(tolerance)
    if not oracle.bracketed:
        return Check(name=name, passed=None, threshold=threshold,
                     value=f"oracle V0 {oracle.v0:.3f} Å³/atom outside its sampled volumes",
                     detail="the oracle's E(V) has no minimum near its relaxed structure; nothing "
                            "to compare")
    error = model.b0_gpa / oracle.b0_gpa - 1.0
    return Check(name=name, passed=abs(error) <= tolerance, threshold=threshold,
                 value=f"{100 * error:+.1f}% ({model.b0_gpa:.1f} vs {oracle.b0_gpa:.1f} GPa)",
                 detail=f"each fitted around its own minimum (V0 {model.v0:.3f} vs {oracle.v0:.3f} "
                        "Å³/atom), ions relaxed with its own forces")


def elastic_threshold(tolerance: float) -> str:
    return (f"|ΔCij| ≤ {100 * tolerance:g}% of max(|Cij oracle|, {ELASTIC_FLOOR:g}·mean(C11, C22, "
            "C33 oracle))")


def elastic_check(comparison: ElasticComparison, tolerance: float) -> Check:
    """Passes when every |deviation| (see :func:`compare_elastic`) is within ``tolerance``."""
    k = comparison.components.index(comparison.worst)
    deviation = np.abs(comparison.deviation)
    off = [n for n, d in zip(comparison.components, deviation, strict=True) if d > tolerance]
    return Check(
        name="elastic constants vs oracle", passed=bool(np.all(deviation <= tolerance)),
        value=f"worst {comparison.worst} {100 * comparison.deviation[k]:+.1f}% "
              f"({comparison.potential_gpa[k]:.1f} vs {comparison.oracle_gpa[k]:.1f} GPa)",
        threshold=elastic_threshold(tolerance),
        detail="each at its own equilibrium; " + (f"beyond the tolerance: {', '.join(off)}" if off
                                                  else "all 21 components within the tolerance"))


def phonon_check(potential: PhononResult, oracle: PhononResult, deviation: PhononDeviation,
                 rms_tolerance: float) -> Check:
    """Passes when the potential reaches the oracle's own verdict (both stable, or both unstable
    with the oracle's worst q-point imaginary for the potential too) and the mesh RMS deviation
    is within ``rms_tolerance`` (THz)."""
    agree, verdict = _verdict(potential, oracle, deviation)
    rms_ok = deviation.mesh_rms_thz <= rms_tolerance
    return Check(
        name="phonons", passed=agree and rms_ok,
        value=f"RMS {deviation.mesh_rms_thz:.2f} THz from the oracle; lowest "
              f"{potential.min_frequency_thz:.2f} THz",
        threshold=f"the oracle's verdict; mesh RMS ≤ {rms_tolerance:g} THz",
        detail=f"{verdict}; {'' if rms_ok else 'RMS above the tolerance; '}{_spread(potential, deviation)}")


def reach_phonon_check(potential: PhononResult, full: PhononResult, reach: ReachLimited,
                       deviation: PhononDeviation, full_deviation: PhononDeviation,
                       rms_tolerance: float) -> Check:
    """Grades the potential against the oracle restricted to its reach (``reach.phonons``, with
    ``deviation``) as :func:`phonon_check` does, and shows the deviation from the ``full`` oracle
    (``full_deviation``) and the long-range part beside it. An instability of the full oracle that
    the restricted one lacks lives beyond the cutoff: no local potential can earn it, so the check
    is then n/a (``passed`` None) unless the RMS from the restricted oracle already fails it."""
    local = reach.phonons
    beyond = not full.stable and local.stable
    if beyond:
        q, worst = full.imaginary[0]
        agree, verdict = True, (
            f"beyond the cutoff: the oracle is unstable at q = {_q(q)} ({worst:.2f} THz) only with "
            f"its force constants beyond {reach.radius:g} Å; within them it is stable (lowest "
            f"{local.min_frequency_thz:.2f} THz); the potential's lowest is "
            f"{potential.min_frequency_thz:.2f} THz")
    else:
        agree, verdict = _verdict(potential, local, deviation)
    rms_ok = deviation.mesh_rms_thz <= rms_tolerance
    removed = (f"{reach.removed_pairs} force-constant blocks beyond {reach.radius:g} Å zeroed"
               if reach.removed_pairs else
               f"nothing beyond {reach.radius:g} Å in the oracle's supercell (it reaches "
               f"{reach.supercell_reach:.1f} Å; a wider validation.phonon_min_width shows more)")
    return Check(
        name="phonons", passed=(None if beyond else True) if agree and rms_ok else False,
        value=f"RMS {deviation.mesh_rms_thz:.2f} THz from the oracle within {reach.radius:g} Å; "
              f"{full_deviation.mesh_rms_thz:.2f} from the full oracle, whose long-range part is "
              f"{reach.long_range_rms_thz:.2f}; lowest {potential.min_frequency_thz:.2f} THz",
        threshold=f"the oracle's verdict within {reach.radius:g} Å; mesh RMS ≤ {rms_tolerance:g} THz",
        detail=f"{verdict}; {'' if rms_ok else 'RMS above the tolerance; '}{removed}; "
               f"{_spread(potential, deviation)}")


def _verdict(potential: PhononResult, oracle: PhononResult, deviation: PhononDeviation) -> tuple[bool, str]:
    """Whether the potential reaches the oracle's stability verdict, and how it reads."""
    if oracle.stable and potential.stable:
        return True, "stable, as the oracle"
    if oracle.stable:
        return False, f"imaginary at {_imaginary(potential)}, where the oracle is stable"
    q = _q(deviation.oracle_worst_q)
    agree = bool(deviation.potential_imaginary_at_oracle_worst) and not potential.stable
    return agree, (f"{'unstable like' if agree else 'NOT unstable like'} the oracle at q = {q}: "
                   f"oracle {deviation.oracle_worst_thz:.2f}, potential "
                   f"{deviation.potential_at_oracle_worst_thz:.2f} THz")


def _spread(potential: PhononResult, deviation: PhononDeviation) -> str:
    return (f"mesh max {deviation.mesh_max_thz:.2f} THz, path RMS {deviation.path_rms_thz:.2f} / max "
            f"{deviation.path_max_thz:.2f} THz (imaginary below −{potential.tolerance_thz:g} THz)")


def own_phonon_check(result: PhononResult, note: str = "") -> Check:
    """Without an oracle: passes when no mode is imaginary."""
    detail = "no imaginary modes" if result.stable else f"imaginary at {_imaginary(result)}"
    return Check(name="phonons", passed=result.stable, value=f"lowest {result.min_frequency_thz:.2f} THz",
                 threshold=f"≥ −{result.tolerance_thz:g} THz", detail=detail + (f"; {note}" if note else ""))


def _imaginary(result: PhononResult) -> str:
    return "q = " + ", ".join(f"{_q(q)} {f:.2f} THz" for q, f in result.imaginary[:3])


def _q(q: list[float] | None) -> str:
    return "-" if q is None else "(" + " ".join(f"{x:.2f}" for x in q) + ")"
