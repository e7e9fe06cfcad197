"""The ZBL baseline from LAMMPS against the universal ZBL formula and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.fd import FiniteDifferenceCalculator

from pyacemaker.training.baseline import ZBLCalculator

COULOMB = 14.399645  # e^2 / (4 pi eps0), eV Angstrom


def zbl_pair(r: float, z1: int, z2: int) -> float:
    """Universal ZBL screened Coulomb energy (eV), written out independently of LAMMPS."""
    a = 0.46850 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = (0.18175 * np.exp(-3.19980 * x) + 0.50986 * np.exp(-0.94229 * x)
           + 0.28022 * np.exp(-0.40290 * x) + 0.02817 * np.exp(-0.20162 * x))
    return COULOMB * z1 * z2 / r * phi


def test_dimer_inside_inner_radius_matches_universal_formula():
    """Inside the inner radius LAMMPS adds only a constant shift (so that the switched energy
    reaches zero at the outer radius): energy differences and forces are pure ZBL."""
    calc = ZBLCalculator(["O", "Ti"], inner=1.0, outer=1.4)
    energies = {}
    for r in (0.5, 0.8):
        dimer = Atoms("TiO", positions=[[5, 5, 5], [5 + r, 5, 5]], cell=[20, 20, 20], pbc=True)
        dimer.calc = calc
        energies[r] = dimer.get_potential_energy()
        forces = dimer.get_forces()
        slope = (zbl_pair(r + 1e-6, 22, 8) - zbl_pair(r - 1e-6, 22, 8)) / 2e-6
        assert forces[1, 0] == pytest.approx(-slope, rel=1e-4)
        np.testing.assert_allclose(forces.sum(axis=0), 0, atol=1e-8)
    expected = zbl_pair(0.5, 22, 8) - zbl_pair(0.8, 22, 8)
    assert energies[0.5] - energies[0.8] == pytest.approx(expected, rel=1e-4)


def test_switching_takes_energy_to_zero_at_outer_radius():
    calc = ZBLCalculator(["Cu"], inner=1.0, outer=1.5)
    dimer = Atoms("Cu2", positions=[[5, 5, 5], [6.6, 5, 5]], cell=[20, 20, 20], pbc=True)
    dimer.calc = calc
    assert dimer.get_potential_energy() == 0.0


def test_forces_and_stress_are_derivatives_of_energy_in_a_triclinic_cell():
    atoms = bulk("Cu", "fcc", a=2.6) * (2, 2, 2)  # compressed: many pairs inside the ZBL range
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + [[0.02, 0.03, 0], [0.03, -0.01, 0.02],
                                                      [0, 0.02, 0.01]]), scale_atoms=True)
    atoms.rattle(0.08, seed=3)
    atoms.calc = ZBLCalculator(["Cu"], inner=1.4, outer=2.1)
    assert atoms.get_potential_energy() > 0
    numeric = FiniteDifferenceCalculator(atoms.calc, eps_disp=1e-5, eps_strain=1e-6)
    forces = atoms.get_forces()
    np.testing.assert_allclose(forces, numeric.get_forces(atoms),
                               atol=1e-5 * max(1.0, np.abs(forces).max()))
    np.testing.assert_allclose(atoms.get_stress(), numeric.get_stress(atoms), rtol=1e-4, atol=1e-6)
