"""Elastic tensor by finite strains, checked on EMT copper against symmetry and an independent EOS."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.units import GPa

from pyacemaker.errors import CalculationFailed
from pyacemaker.validation.elastic import ElasticResult, elastic_tensor
from pyacemaker.validation.relax import relaxed

HEXAGONAL_KEYS = {"C11 - |C12| > 0", "2 C13^2 < C33 (C11 + C12)", "C44 > 0", "C66 > 0"}


@pytest.fixture(scope="module")
def fcc() -> Atoms:
    """Conventional 4-atom fcc Cu, cell relaxed with EMT."""
    return relaxed(bulk("Cu", "fcc", a=3.6, cubic=True), EMT(), cell=True)


@pytest.fixture(scope="module")
def fcc_result(fcc: Atoms) -> ElasticResult:
    return elastic_tensor(fcc, EMT())


@pytest.fixture(scope="module")
def bcc() -> Atoms:
    """Conventional 2-atom bcc Cu, cell relaxed with EMT (a saddle on the Bain path)."""
    return relaxed(bulk("Cu", "bcc", a=2.87, cubic=True), EMT(), cell=True)


def test_fcc_copper_has_cubic_symmetry(fcc_result: ElasticResult) -> None:
    c = np.array(fcc_result.c_gpa)
    for block in (np.diag(c)[:3], c[[0, 0, 1], [1, 2, 2]], np.diag(c)[3:]):
        np.testing.assert_allclose(block, block[0], rtol=1e-3)
    off = c.copy()
    off[:3, :3] = 0.0
    off[3:, 3:] -= np.diag(np.diag(c)[3:])
    np.testing.assert_allclose(off, 0.0, atol=1e-3)
    assert c[0, 0] > c[0, 1] > 0 and c[3, 3] > 0


def test_fcc_copper_is_cubic_and_stable(fcc_result: ElasticResult) -> None:
    assert fcc_result.crystal_system == "cubic"
    assert fcc_result.born_stable and min(fcc_result.eigenvalues_gpa) > 0
    assert set(fcc_result.conditions) == {"C11 - C12 > 0", "C11 + 2 C12 > 0", "C44 > 0"}
    assert all(fcc_result.conditions.values())
    assert fcc_result.max_residual_force < 1e-3


def test_bulk_modulus_matches_an_independent_eos_fit(fcc: Atoms, fcc_result: ElasticResult) -> None:
    c = np.array(fcc_result.c_gpa)
    cubic_bulk = (c[0, 0] + 2 * c[0, 1]) / 3
    assert fcc_result.bulk_voigt_gpa == pytest.approx(cubic_bulk, rel=1e-9)
    assert fcc_result.bulk_reuss_gpa == pytest.approx(cubic_bulk, rel=1e-6)
    assert fcc_result.bulk_hill_gpa == pytest.approx(cubic_bulk, rel=1e-6)
    volumes, energies = [], []
    for factor in np.linspace(0.97, 1.03, 7):
        atoms = fcc.copy()
        atoms.set_cell(fcc.cell.array * factor ** (1 / 3), scale_atoms=True)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    _, _, eos_bulk = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    assert fcc_result.bulk_hill_gpa == pytest.approx(eos_bulk / GPa, rel=0.02)
    assert fcc_result.shear_reuss_gpa < fcc_result.shear_hill_gpa < fcc_result.shear_voigt_gpa


def test_bcc_copper_is_mechanically_unstable(bcc: Atoms) -> None:
    """EMT bcc Cu has C11 < C12: unstable against the tetragonal (Bain) shear."""
    result = elastic_tensor(bcc, EMT())
    c = np.array(result.c_gpa)
    assert c[0, 0] < c[0, 1]
    assert result.crystal_system == "cubic"
    assert not result.born_stable and min(result.eigenvalues_gpa) < 0
    assert result.conditions == {"C11 - C12 > 0": False, "C11 + 2 C12 > 0": True, "C44 > 0": True}


def test_conditions_are_evaluated_in_the_standard_frame(bcc: Atoms) -> None:
    """Rotated 45 degrees about z, bcc Cu looks like C11 > C12 in the input frame; not in the cubic one."""
    rotated = bcc.copy()
    rotated.rotate(45, "z", rotate_cell=True)
    result = elastic_tensor(rotated, EMT())
    c = np.array(result.c_gpa)
    assert c[0, 0] > c[0, 1]
    assert not result.born_stable
    assert not result.conditions["C11 - C12 > 0"]


def test_input_atoms_are_not_modified(fcc: Atoms) -> None:
    atoms = fcc.copy()
    atoms.rattle(0.01, seed=3)
    before = atoms.copy()
    calls: list[tuple[int, int]] = []
    result = elastic_tensor(atoms, EMT(), strains=(-0.005, 0.005), progress=lambda *a: calls.append(a))
    assert atoms == before and atoms.calc is None
    assert calls == [(i, 12) for i in range(1, 13)]
    assert result.max_residual_force < 1e-3


def test_hcp_copper_is_hexagonal() -> None:
    hcp = relaxed(bulk("Cu", "hcp", a=2.55), EMT(), cell=True)
    result = elastic_tensor(hcp, EMT())
    c = np.array(result.c_gpa)
    assert result.crystal_system == "hexagonal"
    assert set(result.conditions) == HEXAGONAL_KEYS and all(result.conditions.values())
    assert result.born_stable
    assert c[1, 1] == pytest.approx(c[0, 0], rel=1e-2)
    assert c[5, 5] == pytest.approx((c[0, 0] - c[0, 1]) / 2, rel=1e-2)


class NanStress(EMT):
    """EMT whose stress is NaN, as a broken engine would return."""

    def calculate(self, *args, **kwargs) -> None:
        super().calculate(*args, **kwargs)
        self.results["stress"] = np.full(6, np.nan)


def test_non_finite_stress_raises(fcc: Atoms) -> None:
    with pytest.raises(CalculationFailed, match="non-finite stress"):
        elastic_tensor(fcc, NanStress())


def test_one_strain_is_rejected(fcc: Atoms) -> None:
    with pytest.raises(ValueError, match="two distinct strains"):
        elastic_tensor(fcc, EMT(), strains=(0.01, 0.01))
