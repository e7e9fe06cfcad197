"""The chgnet oracle: the shipped pretrained CHGNet, run in the labelling workers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.spacegroup import crystal

from pyacemaker.config import OracleConfig, config_from_dict
from pyacemaker.dispatch import LocalDispatcher, Task
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.calculators import chgnet_calculator
from pyacemaker.oracle.task import label
from pyacemaker.resolve import resolve

pytest.importorskip("chgnet", reason="the chgnet extra is not installed (make test installs it)")


def rutile(a: float = 4.65, c: float = 2.967, u: float = 0.305):
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (u, u, 0)], spacegroup=136,
                   cellpar=[a, a, c, 90, 90, 90])


def test_labels_equal_the_calculators_direct_result(tmp_path):
    """Two worker processes label rattled rutile cells; each label is CHGNet's own answer, and
    the provenance names the model and the package version."""
    structures = []
    for seed, repeat in enumerate([(1, 1, 1), (2, 2, 1), (1, 1, 2)]):
        atoms = rutile() * repeat
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    settings = OracleConfig(engine="chgnet", model="0.3.0", workers=2)
    results = {}
    dispatcher = LocalDispatcher({"label": 2}, retries=0, show_progress=False)
    try:
        dispatcher.run("label", [Task(k, label, (settings, atoms))
                                 for k, atoms in enumerate(structures)],
                       results.__setitem__, "labelling")
    finally:
        dispatcher.close()
    direct = chgnet_calculator("0.3.0", {})
    for k, atoms in enumerate(structures):
        result = results[k]
        assert result.ok, result.reason
        assert result.settings["model"] == "0.3.0"
        assert result.settings["version"].startswith("chgnet 0.4")
        copy = atoms.copy()
        copy.calc = direct
        assert result.energy == pytest.approx(copy.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(result.forces, copy.get_forces(), atol=1e-5)
        np.testing.assert_allclose(result.stress, copy.get_stress(voigt=True), atol=1e-6)


def test_size_consistent_energy_per_atom():
    calc = chgnet_calculator("0.3.0", {})
    per_atom = []
    for repeat in [(1, 1, 1), (2, 2, 2)]:
        atoms = rutile() * repeat
        atoms.calc = calc
        per_atom.append(atoms.get_potential_energy() / len(atoms))
    assert per_atom[0] == pytest.approx(per_atom[1], abs=1e-4)


def test_config_defaults_and_checks(tmp_path):
    base = {"composition": "TiO2", "workdir": str(tmp_path)}
    assert resolve(config_from_dict(base | {"oracle": {"engine": "chgnet"}})).oracle.model == "0.3.0"
    with pytest.raises(ConfigError, match="oracle.model.*unknown chgnet model 'v9'"):
        config_from_dict(base | {"oracle": {"engine": "chgnet", "model": "v9"}})
    with pytest.raises(ConfigError, match="oracle.model.*only chgnet"):
        resolve(config_from_dict(base | {"oracle": {"engine": "tblite", "model": "0.3.0"}}))
