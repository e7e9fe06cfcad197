"""Phonons with ASE's EMT: stable fcc Cu, unstable bcc Cu, a multi-atom cell, the supercell rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.spacegroup import crystal
from phonopy.structure.cells import PrimitiveMatrixAutoDefaultWarning

from pyacemaker.errors import CalculationFailed
from pyacemaker.validation.phonons import PhononResult, imaginary_rows, phonons, supercell_matrix
from pyacemaker.validation.relax import relaxed


@pytest.fixture(scope="module")
def copper() -> Atoms:
    return relaxed(bulk("Cu", "fcc", a=3.6), EMT(), cell=True)


@pytest.fixture(scope="module")
def copper_phonons(copper: Atoms) -> PhononResult:
    return phonons(copper, EMT())


def x_point_frequency(copper: Atoms) -> float:
    """Longitudinal X-point frequency (THz) by a frozen phonon, independent of phonopy.

    In the cubic cell, the (001) planes at z = 0 and z = a/2 move by +u and -u along z.
    """
    a = (4 * copper.get_volume()) ** (1 / 3)
    cubic = bulk("Cu", "fcc", a=a, cubic=True)
    sign = np.where(np.isclose(cubic.positions[:, 2], 0.0), 1.0, -1.0)
    u = 1e-3
    cubic.positions[:, 2] += sign * u
    cubic.calc = EMT()
    k = -np.mean(cubic.get_forces()[:, 2] * sign) / u  # eV/Angstrom^2
    omega = np.sqrt(k * units._e * 1e20 / (cubic.get_masses()[0] * units._amu))  # rad/s
    return omega / (2 * np.pi) / 1e12


def test_fcc_copper_is_stable_with_sensible_bands(copper_phonons: PhononResult, copper: Atoms) -> None:
    res = copper_phonons
    assert res.stable and res.imaginary == []
    assert res.labels[0] == "Γ" and len(res.labels) == len(res.label_positions)
    assert "U|K" in res.labels  # fcc path jumps from U to K
    # X lies 1/a from Gamma (1/Angstrom, no 2*pi) at the end of the first segment
    a = (4 * copper.get_volume()) ** (1 / 3)
    assert res.labels[1] == "X" and res.label_positions[1] == pytest.approx(1 / a, rel=1e-6)
    top = max(np.max(f) for f in res.frequencies_thz)
    # EMT gives 8.14 THz (longitudinal at X); real Cu peaks at ~7.3 THz
    assert 6.5 < top < 9.0
    assert top == pytest.approx(x_point_frequency(copper), rel=1e-2)
    gamma = np.array(res.frequencies_thz[0][0])
    assert np.abs(gamma[:3]).max() < 0.05
    assert abs(res.min_frequency_thz) < 0.05


def test_conventional_cell_gives_the_primitive_bands(copper: Atoms, copper_phonons: PhononResult) -> None:
    a = (4 * copper.get_volume()) ** (1 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrimitiveMatrixAutoDefaultWarning)  # silenced by phonons()
        res = phonons(bulk("Cu", "fcc", a=a, cubic=True), EMT())
    assert res.labels == copper_phonons.labels
    x_end = np.array(res.frequencies_thz[0][-1])
    assert x_end == pytest.approx(np.array(copper_phonons.frequencies_thz[0][-1]), abs=0.05)


def test_dos_integrates_to_three_modes_per_atom(copper_phonons: PhononResult) -> None:
    integral = np.trapezoid(copper_phonons.dos, copper_phonons.dos_frequencies_thz)
    assert integral == pytest.approx(3 * 1, rel=0.02)  # one atom in the fcc primitive cell


def test_bcc_copper_is_unstable_at_n() -> None:
    # EMT, like DFT, makes bcc Cu dynamically unstable: imaginary TA mode at N, about -1.14 THz
    # (simple-cubic Cu is unstable too, at M, about -3.4 THz)
    atoms = relaxed(bulk("Cu", "bcc", a=2.87), EMT(), cell=True)
    res = phonons(atoms, EMT())
    assert not res.stable
    assert res.min_frequency_thz < -0.5
    assert 0 < len(res.imaginary) <= 10
    q, worst = res.imaginary[0]
    assert worst == pytest.approx(res.min_frequency_thz)
    assert [f for _, f in res.imaginary] == sorted(f for _, f in res.imaginary)
    a = (2 * atoms.get_volume()) ** (1 / 3)
    reciprocal = np.linalg.inv(atoms.cell.array).T  # atoms is already the primitive cell
    assert np.linalg.norm(np.array(q) @ reciprocal) == pytest.approx(1 / (a * np.sqrt(2)), rel=1e-6)


def test_acoustic_floor_never_hides_an_optical_instability_at_gamma() -> None:
    """Near Gamma only the three modes nearest zero get the acoustic floor (0.5 THz), so a polar
    optical mode unstable at Gamma (rutile TiO2 in PBE and CHGNet: about -3.4 THz) or only
    slightly unstable (-0.3 THz) is still imaginary; acoustic noise of -0.3 THz is not."""
    reciprocal = np.eye(3) / 3.0  # a 3 Angstrom cubic cell
    gamma, far = [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]
    qpoints = np.array([gamma, gamma, gamma, far])
    frequencies = np.array([[-3.4, 0.0, 0.01, 0.02, 5.0, 6.0],   # unstable optical mode
                            [-0.3, 0.0, 0.01, 0.02, 5.0, 6.0],   # slightly unstable optical mode
                            [-0.3, -0.2, 0.01, 4.0, 5.0, 6.0],   # acoustic noise only
                            [-0.3, 2.0, 3.0, 4.0, 5.0, 6.0]])    # away from Gamma: strict floor
    bad = imaginary_rows(qpoints, frequencies, reciprocal, tolerance_thz=0.1, acoustic_tolerance_thz=0.5,
                         gamma_radius=0.1)
    assert bad.tolist() == [True, True, False, True]


def test_supercell_widths_and_input_untouched() -> None:
    atoms = relaxed(bulk("Cu", "hcp", a=2.55, c=4.16), EMT(), cell=True)
    before, calc = atoms.copy(), atoms.calc
    calls: list[tuple[int, int]] = []
    res = phonons(atoms, EMT(), min_width=7.0, progress=lambda done, total: calls.append((done, total)))
    n = np.diag(res.supercell_matrix)
    inverse_widths = np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    assert np.all(n / inverse_widths >= 7.0)
    assert np.all((n - 1) / inverse_widths < 7.0)  # no larger than needed
    assert np.count_nonzero(res.supercell_matrix) == 3
    assert res.supercell_matrix == supercell_matrix(atoms, 7.0)
    assert calls == [(i + 1, res.n_displacements) for i in range(res.n_displacements)]
    assert atoms == before and atoms.calc is calc
    assert res.stable


def test_multi_atom_cell_cu3au() -> None:
    cu3au = crystal(["Au", "Cu"], [(0, 0, 0), (0, 0.5, 0.5)], spacegroup=221, cellpar=[3.75] * 3 + [90] * 3)
    res = phonons(relaxed(cu3au, EMT(), cell=True), EMT())
    # Au (m-3m) and Cu (4/mmm) sites each need one diagonal displacement in phonopy
    assert res.n_displacements == 2
    assert len(res.frequencies_thz[0][0]) == 12
    assert res.labels[:2] == ["Γ", "X"]
    assert res.stable
    assert np.trapezoid(res.dos, res.dos_frequencies_thz) == pytest.approx(12, rel=0.02)


class NaNForces(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.full((len(self.atoms), 3), np.nan)}


def test_non_finite_forces_raise(copper: Atoms) -> None:
    with pytest.raises(CalculationFailed, match="non-finite forces"):
        phonons(copper, NaNForces(), min_width=5.0)
