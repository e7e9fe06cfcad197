"""Seed structures: prototypes, random crystals, user files and cell repetition."""

from __future__ import annotations

from collections import Counter

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.data import atomic_numbers, covalent_radii
from ase.neighborlist import neighbor_list
from ase.spacegroup import crystal

from pyacemaker.config import SeedsConfig
from pyacemaker.errors import ConfigError
from pyacemaker.structures.seeds import cell_widths, seed_structures, supercell_for_width

SETTINGS = SeedsConfig(files=[], min_cell_width=6.0, max_atoms=64, n_random=2)
COMPOSITIONS = {
    "Cu": {"Cu": 1},
    "TiO2": {"Ti": 1, "O": 2},
    "SrTiO3": {"Sr": 1, "Ti": 1, "O": 3},
    "GaN": {"Ga": 1, "N": 1},
    "Li3N": {"Li": 3, "N": 1},  # no prototype in the table: random crystals only
}


def r_cov(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def shortest(atoms: Atoms, a: str, b: str) -> float:
    """Shortest a-b distance over periodic images, Angstrom."""
    sym = np.array(atoms.get_chemical_symbols())
    i, j, d = neighbor_list("ijd", atoms, 6.0)
    return float(d[(sym[i] == a) & (sym[j] == b)].min())


def assert_ratio(atoms: Atoms, composition: dict[str, int]) -> None:
    counts = Counter(atoms.get_chemical_symbols())
    assert set(counts) == set(composition)
    units = counts[next(iter(composition))] / next(iter(composition.values()))
    assert units == int(units) and units >= 1
    assert {el: counts[el] / units for el in composition} == composition


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[tuple[str, Atoms]]]:
    return {name: seed_structures(comp, SETTINGS, seed=1) for name, comp in COMPOSITIONS.items()}


def origins(pairs: list[tuple[str, Atoms]]) -> list[str]:
    return [origin for origin, _ in pairs]


def test_cu_is_fcc_and_wide_enough(seeds):
    pairs = dict(seeds["Cu"])
    fcc = pairs["prototype:fcc"]
    assert set(fcc.get_chemical_symbols()) == {"Cu"}
    assert np.all(cell_widths(fcc) >= SETTINGS.min_cell_width)
    i, d = neighbor_list("id", fcc, 3.61 / np.sqrt(2) + 0.1)
    assert np.allclose(d, 3.61 / np.sqrt(2)) and np.all(np.bincount(i) == 12)
    assert not any(o.startswith("random:") for o in pairs)  # random only without prototypes


def test_tio2_rutile_and_fluorite(seeds):
    pairs = seeds["TiO2"]
    assert {"prototype:rutile", "prototype:fluorite"} <= set(origins(pairs))
    for origin, atoms in pairs:
        assert_ratio(atoms, COMPOSITIONS["TiO2"])
        if origin.startswith("prototype:"):
            assert shortest(atoms, "Ti", "O") == pytest.approx(r_cov("Ti") + r_cov("O"), rel=1e-6)


def test_srtio3_perovskite(seeds):
    pairs = dict(seeds["SrTiO3"])
    perovskite = pairs["prototype:perovskite"]
    assert_ratio(perovskite, COMPOSITIONS["SrTiO3"])
    # the larger Sr sits on the 12-fold A site, further from O than the 6-fold Ti
    ti_o, sr_o = shortest(perovskite, "Ti", "O"), shortest(perovskite, "Sr", "O")
    assert sr_o == pytest.approx(np.sqrt(2) * ti_o)
    assert min(ti_o / (r_cov("Ti") + r_cov("O")), sr_o / (r_cov("Sr") + r_cov("O"))) == (
        pytest.approx(1.0))


def test_gan_binary_prototypes(seeds):
    pairs = seeds["GaN"]
    assert {"prototype:rocksalt", "prototype:zincblende", "prototype:wurtzite"} <= set(
        origins(pairs))
    for _, atoms in pairs:
        assert_ratio(atoms, COMPOSITIONS["GaN"])


def test_unmatched_composition_gives_random_crystals_only(seeds):
    pairs = seeds["Li3N"]
    assert len(pairs) == SETTINGS.n_random
    assert all(o.startswith("random:") for o in origins(pairs))
    for _, atoms in pairs:
        assert_ratio(atoms, COMPOSITIONS["Li3N"])


def test_no_prototype_and_no_random_suggests_files():
    settings = SeedsConfig(files=[], min_cell_width=6.0, max_atoms=64, n_random=0)
    with pytest.raises(ConfigError, match="seeds.files"):
        seed_structures({"Li": 3, "N": 1}, settings, seed=1)


@pytest.mark.parametrize("name", list(COMPOSITIONS))
def test_every_seed_is_periodic_and_not_too_close(seeds, name):
    assert seeds[name]
    for _, atoms in seeds[name]:
        assert atoms.pbc.all() and atoms.cell.rank == 3
        assert len(atoms) <= SETTINGS.max_atoms
        radii = np.array([r_cov(s) for s in atoms.get_chemical_symbols()])
        i, j, d = neighbor_list("ijd", atoms, 3.0)
        assert np.all(d >= 0.5 * (radii[i] + radii[j]))


def test_reproducible_from_seed():
    comp = COMPOSITIONS["TiO2"]
    np.random.seed(123)
    first = seed_structures(comp, SETTINGS, seed=7)
    np.random.seed(456)  # the global RNG state must not matter
    second = seed_structures(comp, SETTINGS, seed=7)
    assert origins(first) == origins(second)
    for (_, a), (_, b) in zip(first, second, strict=True):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell.array, b.cell.array)


def test_max_atoms_respected():
    settings = SeedsConfig(files=[], min_cell_width=8.0, max_atoms=16, n_random=2)
    for comp in (COMPOSITIONS["TiO2"], COMPOSITIONS["GaN"]):
        for _, atoms in seed_structures(comp, settings, seed=3):
            assert len(atoms) <= 16


def test_supercell_for_width_full_and_greedy():
    cu = bulk("Cu", cubic=True)  # 4 atoms, a = 3.61
    before = cu.positions.copy()
    full = supercell_for_width(cu, 6.0, 64)
    assert len(full) == 32 and np.all(cell_widths(full) >= 6.0)
    greedy = supercell_for_width(cu, 10.0, 40)  # 3x3x3 = 108 atoms does not fit
    assert len(greedy) == 32
    assert len(cu) == 4 and np.array_equal(cu.positions, before)
    slab = Atoms("H", cell=[2.0, 4.0, 8.0], pbc=True)
    assert cell_widths(supercell_for_width(slab, 8.0, 100)) == pytest.approx([8.0, 8.0, 8.0])
    assert len(supercell_for_width(slab, 8.0, 6)) == 6  # 4x2x1 = 8 does not fit


def rutile(a: float = 4.59, c: float = 2.96) -> Atoms:
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                   cellpar=[a, a, c, 90, 90, 90])


def test_user_files_poscar_and_extxyz(tmp_path):
    poscar, traj = tmp_path / "POSCAR", tmp_path / "frames.extxyz"
    ase.io.write(poscar, rutile(), format="vasp")
    frames = [rutile(), rutile(4.7, 3.0)]
    frames[1].info["energy_note"] = "ignored"
    ase.io.write(traj, frames, format="extxyz")
    settings = SeedsConfig(files=[poscar, traj], min_cell_width=5.5, max_atoms=64, n_random=2)
    pairs = seed_structures(COMPOSITIONS["TiO2"], settings, seed=1)
    assert origins(pairs) == ["file:POSCAR", "file:frames.extxyz@0", "file:frames.extxyz@1"]
    for _, atoms in pairs:
        assert_ratio(atoms, COMPOSITIONS["TiO2"])
        assert np.all(cell_widths(atoms) >= 5.5) and atoms.info == {}
    assert shortest(pairs[0][1], "Ti", "O") == pytest.approx(shortest(rutile(), "Ti", "O"))


def test_corrupt_file_raises(tmp_path):
    good, bad = tmp_path / "POSCAR", tmp_path / "broken.cif"
    ase.io.write(good, rutile(), format="vasp")
    bad.write_text("this is not\na structure file\n")
    settings = SeedsConfig(files=[good, bad], min_cell_width=6.0, max_atoms=64, n_random=2)
    with pytest.raises(ConfigError, match=r"seeds\.files\.1.*broken\.cif"):
        seed_structures(COMPOSITIONS["TiO2"], settings, seed=1)


def test_missing_file_raises(tmp_path):
    settings = SeedsConfig(files=[tmp_path / "nope.vasp"], n_random=0)
    with pytest.raises(ConfigError, match=r"seeds\.files\.0"):
        seed_structures(COMPOSITIONS["TiO2"], settings, seed=1)


def test_file_with_foreign_element_raises(tmp_path):
    path = tmp_path / "NaCl.vasp"
    ase.io.write(path, bulk("NaCl", "rocksalt", a=5.64), format="vasp")
    settings = SeedsConfig(files=[path], min_cell_width=6.0, max_atoms=64, n_random=2)
    with pytest.raises(ConfigError, match=r"seeds\.files\.0.*NaCl\.vasp.*element Cl"):
        seed_structures({"Na": 1, "O": 1}, settings, seed=1)


def test_non_periodic_file_raises(tmp_path):
    path = tmp_path / "water.extxyz"
    ase.io.write(path, molecule("H2O"), format="extxyz")
    settings = SeedsConfig(files=[path], min_cell_width=6.0, max_atoms=64, n_random=2)
    with pytest.raises(ConfigError, match=r"seeds\.files\.0.*periodic 3D cell"):
        seed_structures({"H": 2, "O": 1}, settings, seed=1)


def test_file_with_overlapping_atoms_raises(tmp_path):
    path = tmp_path / "POSCAR"
    ase.io.write(path, Atoms("TiO2", positions=[[0, 0, 0], [0.3, 0, 0], [2, 2, 2]],
                             cell=[4, 4, 4], pbc=True), format="vasp")
    settings = SeedsConfig(files=[path], min_cell_width=6.0, max_atoms=64, n_random=2)
    with pytest.raises(ConfigError, match=r"seeds\.files\.0.*apart"):
        seed_structures(COMPOSITIONS["TiO2"], settings, seed=1)


def test_dft_oracles_get_small_seed_cells_unless_set():
    """A DFT oracle's seeds are the conventional or primitive cells (Si: 8 atoms, corundum: its
    10-atom primitive cell), not 2x2x2 repetitions; sizes the config sets are kept."""
    from pyacemaker.resolve import DFT_SEEDS, _dft_sized

    dft = _dft_sized(SeedsConfig(), DFT_SEEDS, "espresso")
    assert (dft.min_cell_width, dft.max_atoms) == (DFT_SEEDS["min_cell_width"], DFT_SEEDS["max_atoms"])
    assert _dft_sized(SeedsConfig(), DFT_SEEDS, "chgnet") == SeedsConfig()
    kept = _dft_sized(SeedsConfig(max_atoms=64), DFT_SEEDS, "vasp")
    assert (kept.min_cell_width, kept.max_atoms) == (DFT_SEEDS["min_cell_width"], 64)
    sizes = {comp: [len(a) for _, a in seed_structures(Counter(counts), dft, seed=0)]
             for comp, counts in (("Si", {"Si": 1}), ("Al2O3", {"Al": 2, "O": 3}))}
    assert sizes["Si"][0] == 8 and max(sizes["Si"]) <= 16
    assert sizes["Al2O3"] == [10]
    default = [len(a) for _, a in seed_structures(Counter({"Si": 1}), SeedsConfig(), seed=0)]
    assert default[0] == 64  # the cheap oracles' default: 2x2x2 of diamond's 8-atom cell
