"""Shared fixtures: EMT-labelled copper structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator


def emt_labelled(atoms: Atoms) -> Atoms:
    """``atoms`` carrying its EMT energy, forces and stress as a single-point result."""
    atoms.calc = EMT()
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def emt_copper(n: int, seed: int) -> list[Atoms]:
    """``n`` strained and rattled 32-atom fcc Cu cells with EMT energies and forces."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
        strain = rng.uniform(-0.04, 0.04, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.01, 0.12), atoms.positions.shape)
        out.append(emt_labelled(atoms))
    return out


@pytest.fixture(scope="session")
def copper_data() -> tuple[list[Atoms], list[Atoms]]:
    """(train, test): 60 and 20 EMT-labelled Cu structures from independent streams."""
    return emt_copper(60, seed=1), emt_copper(20, seed=2)


@pytest.fixture(scope="session")
def copper_fit(copper_data, tmp_path_factory):
    """(potential, fit result, folder): linear ACE + ZBL fitted to ``copper_data``."""
    from pyacemaker.config import TrainerConfig, default_cutoff, default_zbl_range
    from pyacemaker.training.linear import fit_linear_ace

    train, test = copper_data
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer)
    folder = tmp_path_factory.mktemp("fit") / "potential"
    potential, result = fit_linear_ace(train, test, ["Cu"], settings, folder)
    return potential, result, folder
