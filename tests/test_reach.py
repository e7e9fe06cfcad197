"""The oracle's phonons restricted to a local potential's reach, and the verdicts built on them,
with real phonopy, EMT and Lennard-Jones forces."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from pyacemaker.config import ValidationConfig
from pyacemaker.validation.compare import OracleComparison, compare_phonons, reach_phonon_check
from pyacemaker.validation.phonons import PhononResult, force_constants, phonon_result
from pyacemaker.validation.reach import (
    DisplacementForces,
    ReachLimited,
    force_constant_reach,
    reach_limited,
    reach_radius,
)
from pyacemaker.validation.reference import OracleReference, oracle_reference
from pyacemaker.validation.report import render
from pyacemaker.validation.validate import ValidationResult, validate
from tests.test_validation import broken_copy, by_name


def phonons_and_forces(atoms: Atoms, calc, n: int) -> tuple[PhononResult, DisplacementForces, float]:
    """Full phonons on an n x n x n supercell of ``atoms``, their displacement forces and how far
    the force constants reach (above 1e-6 eV/Å^2)."""
    phonon = force_constants(atoms, calc, np.diag([n] * 3).tolist(), 0.01)
    return phonon_result(phonon, displacement=0.01), DisplacementForces.of(phonon), force_constant_reach(
        phonon, 1e-6)


@pytest.fixture(scope="module")
def argon() -> tuple[Atoms, PhononResult, DisplacementForces]:
    """fcc Ar with a long-ranged Lennard-Jones (cutoff 10 Å) on a 5x5x5 primitive supercell."""
    atoms = bulk("Ar", "fcc", a=5.26)
    full, forces, _ = phonons_and_forces(atoms, LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0), 5)
    return atoms, full, forces


def test_short_ranged_force_constants_are_left_untouched() -> None:
    """EMT Cu's force constants vanish beyond ~7.7 Å; restricted at 8 Å in a supercell that
    reaches 8.5 Å, and at a radius beyond the supercell, the frequencies are the full ones."""
    copper = bulk("Cu", "fcc", a=3.61, cubic=True)
    full, forces, fc_reach = phonons_and_forces(copper, EMT(), 3)
    assert 5.0 < fc_reach < 8.0
    within = reach_limited(copper, full, forces, 8.0)
    assert within.removed_pairs > 0 and within.supercell_reach > 8.0  # something was zeroed, all ~0
    beyond = reach_limited(copper, full, forces, 50.0)
    assert beyond.removed_pairs == 0
    for restricted in (within, beyond):
        assert restricted.long_range_rms_thz < 1e-4 and restricted.long_range_max_thz < 1e-3
        np.testing.assert_allclose(restricted.phonons.mesh_frequencies_thz, full.mesh_frequencies_thz,
                                   atol=1e-3)
        assert restricted.phonons.stable and restricted.phonons.mesh_qpoints == full.mesh_qpoints
    np.testing.assert_allclose(beyond.phonons.mesh_frequencies_thz, full.mesh_frequencies_thz, atol=1e-9)


def test_long_ranged_model_restricted_changes_its_frequencies(argon) -> None:
    """A 10 Å Lennard-Jones kept to its nearest neighbours (4.5 Å) loses its attractive tail:
    frequencies (up to 2 THz) move by 0.03 THz RMS, 0.06 at most, against 1e-6 THz of numerical
    noise; acoustic modes stay zero at Gamma (sum rule restored)."""
    atoms, full, forces = argon
    short = reach_limited(atoms, full, forces, 4.5)
    assert short.removed_pairs > 0 and short.long_range_rms_thz > 0.02 and short.long_range_max_thz > 0.05
    gamma = [i for i, q in enumerate(short.phonons.mesh_qpoints) if np.allclose(q, 0)]
    np.testing.assert_allclose(short.phonons.mesh_frequencies_thz[gamma[0]], 0.0, atol=1e-3)
    assert reach_limited(atoms, full, forces, reach_radius(10.0)).long_range_rms_thz < 1e-6
    assert reach_radius(4.0) == 8.0


def test_broken_potential_still_fails_the_phonons_within_its_reach(copper_fit, tmp_path) -> None:
    """ACE coefficients x 0.8 lower every frequency by ~11%: the phonon check fails against the
    oracle (EMT) restricted to 2 x the cutoff, and the report keeps the full comparison beside it."""
    potential, _, _ = copper_fit
    settings = ValidationConfig(phonon_min_width=5.0)
    fcc = bulk("Cu", "fcc", a=3.6)
    reference = oracle_reference(fcc, EMT(), settings)
    assert reference.phonon_forces is not None
    broken = broken_copy(potential, tmp_path / "broken", scale=0.8)
    result = validate(broken, fcc, settings, reference=reference, show_progress=False)
    phonons = by_name(result)["phonons"]
    reach = result.comparison.phonon_reach
    assert phonons.passed is False and "RMS above the tolerance" in phonons.detail
    assert reach.radius == pytest.approx(2 * potential.cutoff)
    assert "from the full oracle" in phonons.value and "long-range part" in phonons.value
    assert result.comparison.phonons.mesh_rms_thz > 0.5 and result.comparison.phonons_full.mesh_rms_thz > 0.5
    assert reach.long_range_rms_thz < 1e-3  # EMT is short-ranged: nothing beyond the reach
    html = render(result)
    assert 'id="phonon-reach"' in html and "graded" in html and "long-range part" in html


def test_instability_beyond_the_cutoff_is_neither_pass_nor_fail(argon) -> None:
    """An oracle imaginary at Gamma only with its long-range force constants: the potential is
    not graded on it (n/a, with the numbers) unless it already misses the restricted oracle."""
    atoms, full, forces = argon
    local = reach_limited(atoms, full, forces, 8.0)
    unstable = full.model_copy(update={"stable": False, "imaginary": [([0.0, 0.0, 0.0], -1.5)],
                                       "min_frequency_thz": -1.5})
    close = compare_phonons_of(atoms, local.phonons)
    check = reach_phonon_check(local.phonons, unstable, local, close, close, 0.5)
    assert check.passed is None
    assert "beyond the cutoff" in check.detail and "-1.50 THz" in check.detail and "8 Å" in check.detail
    far = close.model_copy(update={"mesh_rms_thz": 0.9})
    assert reach_phonon_check(local.phonons, unstable, local, far, far, 0.5).passed is False
    both = ReachLimited.model_validate(local.model_dump() | {"phonons": unstable.model_dump()})
    missed = close.model_copy(update={"oracle_worst_q": [0.0, 0.0, 0.0], "oracle_worst_thz": -1.5,
                                      "potential_at_oracle_worst_thz": 0.1,
                                      "potential_imaginary_at_oracle_worst": False})
    graded = reach_phonon_check(local.phonons, unstable, both, missed, close, 0.5)
    assert graded.passed is False and "NOT unstable like the oracle" in graded.detail
    assert reach_phonon_check(local.phonons, full, local, close, close, 0.5).passed is True
    shown = ValidationResult(potential="lj", created="now", seconds=0.0, passed=True, checks=[check],
                             phonons=local.phonons, oracle_reference=OracleReference(phonons=unstable),
                             comparison=OracleComparison(phonons=close, phonons_full=close,
                                                         phonon_reach=local))
    html = render(shown)  # the restricted oracle's bands drawn over the others
    assert "no local potential can earn it" in html and "force-constant blocks beyond it were zeroed" in html


def compare_phonons_of(atoms: Atoms, oracle: PhononResult):
    """The deviation of a Lennard-Jones Ar model cut at 8 Å from ``oracle`` (a small one)."""
    phonon = force_constants(atoms, LennardJones(sigma=3.4, epsilon=0.0104, rc=8.0),
                             oracle.supercell_matrix, 0.01)
    mine = phonon_result(phonon, path=(oracle.path, oracle.path_names), displacement=0.01)
    return compare_phonons(phonon, mine, oracle)
