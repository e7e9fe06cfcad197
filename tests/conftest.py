"""Shared fixtures: EMT-labelled copper structures, and potentials fitted to them."""

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
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), radial_basis="SBessel", zbl_inner=inner,
                             zbl_outer=outer)
    folder = tmp_path_factory.mktemp("fit") / "potential"
    potential, result = fit_linear_ace(train, test, ["Cu"], settings, folder)
    return potential, result, folder


def vacancy_hop() -> tuple[Atoms, Atoms]:
    """(initial, final): a 31-atom fcc Cu cell with a vacancy at the cube corner, before and
    after its nearest neighbour hops into it (unrelaxed)."""
    perfect = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    neighbour = int(np.argsort(perfect.get_distances(0, range(len(perfect)), mic=True))[1])
    initial, final = perfect.copy(), perfect.copy()
    final.positions[neighbour] = perfect.positions[0]
    del initial[0], final[0]
    return initial, final


def hop_structures(n: int, seed: int) -> list[Atoms]:
    """``n`` EMT-labelled vacancy cells near the hop path, rattled: the images of a plain
    (not climbing) 3-image EMT band, as labelled saddle-search candidates would give."""
    from pyacemaker.saddles import minimized, neb_path

    rng = np.random.default_rng(seed)
    initial, final = vacancy_hop()
    band = neb_path(minimized(initial, EMT()), minimized(final, EMT()), EMT(), images=3,
                    climb=False)
    out = []
    for k in range(n):
        atoms = band.images[k % len(band.images)].copy()
        atoms.positions += rng.normal(0.0, rng.uniform(0.02, 0.1), atoms.positions.shape)
        out.append(emt_labelled(atoms))
    return out


@pytest.fixture(scope="session")
def vacancy_fit(tmp_path_factory):
    """Linear ACE + ZBL fitted to EMT bulk Cu and vacancy cells near the hop path."""
    from pyacemaker.config import TrainerConfig, default_cutoff, default_zbl_range
    from pyacemaker.training.linear import fit_linear_ace

    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), radial_basis="SBessel", zbl_inner=inner,
                             zbl_outer=outer)
    train = emt_copper(30, seed=11) + hop_structures(40, seed=12)
    test = emt_copper(8, seed=13) + hop_structures(10, seed=14)
    potential, _ = fit_linear_ace(train, test, ["Cu"], settings,
                                  tmp_path_factory.mktemp("vacancy") / "potential")
    return potential
