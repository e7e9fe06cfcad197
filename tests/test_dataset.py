"""The labelled-structure store: deduplication, fixed split, labels, failures, export."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from pyacemaker.dataset import Dataset, structure_hash, to_pacemaker_dataframe
from pyacemaker.records import LabelResult


def rattled(seed: int):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_hash_ignores_wrapping_and_sees_displacements():
    atoms = rattled(0)
    shifted = atoms.copy()
    shifted.positions += atoms.cell[0]
    assert structure_hash(atoms) == structure_hash(shifted)
    moved = atoms.copy()
    moved.positions[0, 0] += 0.01
    assert structure_hash(atoms) != structure_hash(moved)


def test_add_pending_deduplicates_and_keeps_provenance(tmp_path):
    data = Dataset(tmp_path / "d.db", test_fraction=0.2)
    items = [(rattled(i), {"iteration": 0, "generator": "rattle", "strain": [0.1]}) for i in range(5)]
    assert data.add_pending(items) == 5
    assert data.add_pending(items[:3] + [(rattled(7), {"iteration": 1})]) == 1
    assert data.count() == 6 and data.count(iteration=1) == 1
    assert [a.get_chemical_formula() for _, a in data.pending()] == ["Cu4"] * 6


def test_split_is_fixed_and_small_sets_get_a_test_share(tmp_path):
    data = Dataset(tmp_path / "d.db", test_fraction=0.1)
    data.add_pending([(rattled(i), {"iteration": 0}) for i in range(10)])
    first = {h: s for h, s in _splits(data)}
    assert list(first.values()).count("test") == 1
    data.add_pending([(rattled(i), {"iteration": 1}) for i in range(10, 40)])
    after = dict(_splits(data))
    assert all(after[h] == s for h, s in first.items())
    assert list(after.values()).count("test") == 4


def _splits(data: Dataset):
    return [(row.hash, row.split) for row in data._db.select()]


def test_labels_and_failures_are_stored_with_settings(tmp_path):
    data = Dataset(tmp_path / "d.db", test_fraction=0.1)
    data.add_pending([(rattled(i), {"iteration": 0}) for i in range(3)])
    (id0, a0), (id1, _), _ = data.pending()
    forces = np.arange(12.0).reshape(4, 3)
    data.store_label(id0, LabelResult(ok=True, energy=-1.5, forces=forces.tolist(),
                                      stress=[0.1] * 6, settings={"engine": "emt"}))
    data.store_label(id1, LabelResult(ok=False, reason="SCF not converged"))
    assert data.counts() == {"labelled": 1, "failed": 1, "pending": 1}
    (labelled,) = data.labelled()
    assert labelled.get_potential_energy() == -1.5
    np.testing.assert_allclose(labelled.get_forces(), forces)
    np.testing.assert_allclose(labelled.positions, a0.positions)
    assert data._db.get(id=id0).data["oracle"] == {"engine": "emt"}
    assert data.failures()[0]["reason"] == "SCF not converged"
    df = to_pacemaker_dataframe([labelled])
    assert df["energy"].tolist() == [-1.5] and df["NUMBER_OF_ATOMS"].tolist() == [4]
    assert df["ase_atoms"][0].calc is None


def test_a_lock_file_left_by_a_killed_run_does_not_block(tmp_path):
    """A SIGKILL can land inside a write; ase.db's lock file would then remain. The dataset
    relies on SQLite's own locking, so a resumed run goes on (this hung before the fix)."""
    data = Dataset(tmp_path / "d.db", test_fraction=0.1)
    data.add_pending([(rattled(0), {"iteration": 0})])
    (tmp_path / "d.db.lock").write_text("")  # what a killed writer leaves behind
    resumed = Dataset(tmp_path / "d.db", test_fraction=0.1)
    (row_id, _), = resumed.pending()
    resumed.store_label(row_id, LabelResult(ok=False, reason="test"))
    assert resumed.add_pending([(rattled(1), {"iteration": 0})]) == 1
    assert resumed.counts() == {"failed": 1, "pending": 1}


def test_embedding_weights_survive_labelling(tmp_path):
    data = Dataset(tmp_path / "d.db", test_fraction=0.5)
    data.add_pending([(rattled(i), {"iteration": 1, "force_weights": [1, 0, 0, 1]})
                      for i in range(4)])
    for row_id, _ in data.pending():
        data.store_label(row_id, LabelResult(ok=True, energy=-1.0,
                                             forces=np.zeros((4, 3)).tolist()))
    labelled = data.labelled()
    assert len(labelled) == 4 and data.count(split="test") == 0  # embedded cells never test
    for atoms in labelled:
        assert atoms.info["energy_weight"] == 0.0
        assert atoms.arrays["force_weight"].tolist() == [1, 0, 0, 1]
    assert all("oracle" in row.data and "force_weights" in row.data for row in data._db.select())


def test_split_is_stratified_by_class_and_deterministic(tmp_path):
    """Every class with 1/test_fraction rows gets held-out rows, whatever its share of the data;
    the same additions give the same splits; a later addition never moves an earlier row."""
    def fill(path):
        data = Dataset(path, test_fraction=0.1)
        data.add_pending([(rattled(i), {"generator": "md"}) for i in range(60)])
        data.add_pending([(rattled(100 + i), {"generator": "vacancy"}) for i in range(10)])
        return data

    data = fill(tmp_path / "a.db")
    rows, tests = data.class_counts()
    assert rows == {"md": 60, "vacancy": 10} and tests == {"md": 6, "vacancy": 1}
    assert _splits(data) == _splits(fill(tmp_path / "b.db"))
    before = dict(_splits(data))
    data.add_pending([(rattled(200 + i), {"generator": "vacancy"}) for i in range(10)])
    after = dict(_splits(data))
    assert all(after[h] == s for h, s in before.items())
    assert data.class_counts()[1]["vacancy"] == 2


def test_a_small_dataset_of_small_classes_still_has_a_test_set(tmp_path):
    """16 rows in three classes of 5-6: no class reaches ten rows, yet the whole dataset is held
    out (one or two rows, between floor and ceil), as before stratification."""
    data = Dataset(tmp_path / "d.db", test_fraction=0.1)
    data.add_pending([(rattled(i), {"generator": ("seed", "rattle", "strain")[i % 3]})
                      for i in range(16)])
    rows, tests = data.class_counts()
    assert rows.total() == 16 and 1 <= tests.total() <= 2
