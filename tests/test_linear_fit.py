"""Linear ACE on EMT copper: held-out accuracy, written files, calculator consistency."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from pyacemaker.config import TargetsConfig, TrainerConfig, default_cutoff, default_zbl_range
from pyacemaker.dataset import structure_hash
from pyacemaker.errors import CalculationFailed
from pyacemaker.records import BasisSpec
from pyacemaker.training.basis import basis_config, gamma_limit
from pyacemaker.training.linear import (
    active_set_structures,
    fit_linear_ace,
    load_fit,
)
from pyacemaker.training.selection import max_gamma, select


@pytest.fixture(scope="module")
def fitted(copper_fit):
    return copper_fit


def test_cu_from_emt_meets_accuracy_targets(fitted):
    _, result, _ = fitted
    assert result.n_train == 60 and result.n_test == 20
    assert result.test_energy_rmse < 1.0  # meV/atom
    assert result.test_force_rmse < 0.05  # eV/Angstrom


def test_fit_writes_all_files_and_reloads(fitted):
    potential, result, folder = fitted
    for name in ("potential.yaml", "potential.yace", "potential.asi", "potential.json", "fit.json"):
        assert (folder / name).stat().st_size > 0
    assert not folder.with_name("potential.partial").exists()
    reloaded, again = load_fit(folder)
    assert again == result and reloaded.reference_energies == potential.reference_energies


def test_calculator_reproduces_emt_on_unseen_structure(fitted):
    potential, _, _ = fitted
    from tests.conftest import emt_copper

    (atoms,) = emt_copper(1, seed=99)
    reference = atoms.copy()
    reference.calc = EMT()
    atoms.calc = potential.calculator()
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(
        reference.get_potential_energy() / len(atoms), abs=2e-3)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=0.1)
    gamma = atoms.calc.results["gamma"]
    assert gamma.shape == (len(atoms),) and gamma.max() < 5  # interpolation, not extrapolation


def test_gamma_flags_unseen_compression_and_maxvol_selects_it(fitted, copper_data):
    potential, _, _ = fitted
    train, _ = copper_data
    near = [a.copy() for a in train[:3]]
    far = [a.copy() for a in train[3:5]]
    for atoms in far:
        atoms.set_cell(atoms.cell.array * 0.85, scale_atoms=True)
    candidates = near + far
    gammas = max_gamma(potential, candidates)
    assert gammas[3:].min() > 5 > gammas[:3].max()
    assert set(select(potential, candidates, gammas, 2, 5.0, require_extrapolation=True)) == {3, 4}
    assert select(potential, near, gammas[:3], 2, 5.0, require_extrapolation=True) == []
    assert len(select(potential, near, gammas[:3], 2, 5.0, require_extrapolation=False)) == 2


def test_too_little_data_is_a_clear_error(copper_data):
    train, _ = copper_data
    with pytest.raises(CalculationFailed, match="label more structures"):
        gamma_limit([train[0][:4]], ["Cu"])


def test_structures_beyond_max_force_are_left_out_and_scored_apart(copper_data, tmp_path):
    train, test = copper_data
    inner, outer = default_zbl_range(["Cu"])
    limit = float(np.median([np.abs(a.get_forces()).max() for a in train + test]))
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                             radial_basis="SBessel", functions_per_element=16, max_force=limit)
    _, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "potential")
    strong = [a for a in test if np.abs(a.get_forces()).max() > limit]
    assert result.n_train == len(train) - result.n_excluded
    assert result.n_excluded == sum(np.abs(a.get_forces()).max() > limit for a in train) > 0
    assert result.n_test == len(test)
    assert result.test_beyond_force_limit.n_structures == len(strong) > 0
    assert sum(e.n_structures for e in result.test_by_class.values()) == len(test) - len(strong)


def test_held_out_errors_per_class_and_over_the_target_classes(copper_data, tmp_path):
    train, test = copper_data
    test = [a.copy() for a in test]
    for k, atoms in enumerate(test):
        atoms.calc = copper_data[1][k].calc
        atoms.info["generator"] = "md" if k % 2 else "vacancy"
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                             radial_basis="SBessel", functions_per_element=16)
    _, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "p",
                               TargetsConfig(classes=["md"]))
    md, vacancy = result.test_by_class["md"], result.test_by_class["vacancy"]
    assert md.n_structures == vacancy.n_structures == 10
    assert result.test_energy_rmse == pytest.approx(md.energy_rmse)
    assert result.test_force_rmse == pytest.approx(md.force_rmse)


def test_energies_carry_weight(copper_data, tmp_path):
    """Energies shifted by a term of the volume alone (forces unchanged): only the energy rows
    say which model is right. The balanced fit follows them; a fit that gives forces 99.9% of
    the loss (what one energy row per structure against three per atom amounted to) does not."""
    from ase.calculators.singlepoint import SinglePointCalculator

    def shifted(structures):
        out = []
        for atoms in structures:
            copy = atoms.copy()
            extra = 0.5 * len(atoms) * (atoms.get_volume() / len(atoms) / 11.76 - 1.0)  # eV
            copy.calc = SinglePointCalculator(copy, energy=atoms.get_potential_energy() + extra,
                                              forces=atoms.get_forces())
            out.append(copy)
        return out

    train, test = (shifted(s) for s in copper_data)
    inner, outer = default_zbl_range(["Cu"])
    errors = {}
    for kappa in (0.3, 0.999):
        settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                                 radial_basis="SBessel", functions_per_element=40, loss_kappa=kappa)
        errors[kappa] = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / f"k{kappa}")[1]
    assert errors[0.3].test_energy_rmse < errors[0.999].test_energy_rmse / 3
    assert errors[0.3].train_energy_rmse < errors[0.999].train_energy_rmse / 3


def test_zero_weights_keep_corrupted_labels_out_of_the_fit(copper_data, tmp_path):
    """Periodic embedding marks boundary atoms (force weight 0) and the cell's energy (weight 0);
    the fit must ignore exactly those numbers."""
    from ase.calculators.singlepoint import SinglePointCalculator

    train, test = copper_data
    bad = train[0].copy()
    forces = train[0].get_forces().copy()
    forces[16:] += 5.0  # wrong forces on half of the atoms ...
    bad.calc = SinglePointCalculator(bad, energy=train[0].get_potential_energy() + 50.0,
                                     forces=forces)  # ... and a wrong energy
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                             radial_basis="SBessel", functions_per_element=40)
    _, clean = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "clean")
    _, unweighted = fit_linear_ace([*train[1:], bad], test, ["Cu"], settings, tmp_path / "a")
    bad.info["energy_weight"] = 0.0
    bad.arrays["force_weight"] = np.r_[np.ones(16), np.zeros(16)]
    _, weighted = fit_linear_ace([*train[1:], bad], test, ["Cu"], settings, tmp_path / "b")
    assert unweighted.test_energy_rmse > 3 * clean.test_energy_rmse
    assert weighted.test_energy_rmse == pytest.approx(clean.test_energy_rmse, rel=0.1)
    assert weighted.test_force_rmse == pytest.approx(clean.test_force_rmse, rel=0.1)


def test_virial_rows_give_the_fitted_potentials_stress(copper_data, tmp_path):
    """The virial rows (finite strain derivatives of pyace's energy rows) times the fitted
    coefficients equal the stress pyace's own calculator gives the ACE part, per atom."""
    from pyace import ACEBBasisSet

    from pyacemaker.structures import bare
    from pyacemaker.training.baseline import ZBLCalculator
    from pyacemaker.training.linear import virial_rows

    train, test = copper_data  # EMT labels with stresses
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                             radial_basis="SBessel", functions_per_element=24)
    potential, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "p")
    assert result.n_stressed == len(train)
    basis = ACEBBasisSet(str(potential.yaml))
    rows = virial_rows(basis, test[:3])
    baseline = ZBLCalculator(["Cu"], inner, outer)
    for k, atoms in enumerate(test[:3]):
        full, zbl = bare(atoms), bare(atoms)
        full.calc, zbl.calc = potential.calculator(), baseline
        expected = (full.get_stress() - zbl.get_stress()) * atoms.get_volume() / len(atoms)
        assert np.abs(expected).max() > 1e-3  # strained cells: a stress worth comparing
        np.testing.assert_allclose(rows[6 * k:6 * k + 6] @ np.asarray(basis.basis_coeffs), expected,
                                   atol=1e-6)


def test_stresses_carry_weight(copper_data, tmp_path):
    """Held-out stresses: a fit that gives stresses a share of the loss follows them several
    times better than one that learns them only through energies and forces."""
    train, test = copper_data  # EMT labels with stresses
    inner, outer = default_zbl_range(["Cu"])
    errors = {}
    for share in (0.0, 0.3):
        settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                                 radial_basis="SBessel", functions_per_element=24, loss_stress=share)
        _, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / f"s{share}")
        errors[share] = result.test_by_class["unknown"].stress_rmse
        assert result.n_stressed == (len(train) if share else 0)
    assert errors[0.3] < errors[0.0] / 3


def test_pruning_keeps_the_structures_that_hold_the_active_set(copper_data, tmp_path):
    """The structures pruned away are interpolations (gamma about 1 or less) for the pruned fit's active
    set: they added rows, not new environments."""
    train, test = copper_data
    inner, outer = default_zbl_range(["Cu"])
    settings = TrainerConfig(cutoff=default_cutoff(["Cu"]), zbl_inner=inner, zbl_outer=outer,
                             radial_basis="SBessel", functions_per_element=16, prune_to_active_set=True)
    potential, result = fit_linear_ace(train, test, ["Cu"], settings, tmp_path / "potential")
    assert result.n_pruned > 0 and result.n_train + result.n_pruned == len(train)
    kept = {structure_hash(a) for a in active_set_structures(
        train, basis_config(BasisSpec(cutoff=settings.cutoff, radial_basis="SBessel",
                                      functions_per_element=16), ["Cu"]))}
    pruned = [a for a in train if structure_hash(a) not in kept]
    assert len(pruned) == result.n_pruned
    assert max_gamma(potential, pruned).max() < 1.1  # MaxVol stops within a few per cent
