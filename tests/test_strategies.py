"""Exploration strategies (geometric invariants) and the adaptive policy."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from pyacemaker.records import HOTTEST
from pyacemaker.structures.policy import adapt, gamma_thresholds, initial_decision, rare_events
from pyacemaker.structures.seeds import seed_structures
from pyacemaker.structures.strategies import (
    SLAB_VACUUM,
    antisite,
    interstitial,
    physical,
    primitive_miller,
    rattle,
    slab,
    strain,
    swaps,
    vacancy,
)


def rutile():
    from pyacemaker.config import SeedsConfig

    (origin, atoms), = seed_structures({"Ti": 1, "O": 2}, SeedsConfig(prototypes=["rutile"]), 1)
    return atoms


def cuau():
    atoms = bulk("Cu", "fcc", a=3.8, cubic=True) * (2, 2, 2)
    atoms.symbols[::2] = "Au"
    return atoms


def counts(atoms) -> dict[str, int]:
    symbols = atoms.get_chemical_symbols()
    return {s: symbols.count(s) for s in set(symbols)}


@pytest.mark.parametrize("seed", range(5))
def test_defects_change_stoichiometry_as_intended(seed):
    rng = np.random.default_rng(seed)
    start = rutile()
    before = counts(start)
    out, info = vacancy(start, rng)
    assert counts(out) == {**before, info["removed"]: before[info["removed"]] - 1}
    out, info = interstitial(start, rng)
    assert counts(out) == {**before, info["added"]: before[info["added"]] + 1}
    assert physical(out)  # the most open of the trial points
    assert antisite(start, rng) is None  # Ti on an O site is not physical
    alloy = cuau()
    out, info = antisite(alloy, rng)
    assert counts(out) == counts(alloy) and info["exchanged"] == "Au-Cu"
    moved = np.linalg.norm(out.positions - alloy.positions, axis=1) > 1e-9
    assert moved.sum() == 2 and len({alloy[i].symbol for i in np.flatnonzero(moved)}) == 2
    assert antisite(bulk("Cu", cubic=True), rng) is None  # one element: nothing to exchange


def test_swaps_keep_composition_and_follow_the_energy():
    rng = np.random.default_rng(0)
    start = cuau()

    def gold_height(atoms):  # an energy that prefers Au high along z
        return -float(atoms.positions[np.array(atoms.get_chemical_symbols()) == "Au", 2].sum())

    out, info = swaps(start, rng, gold_height, temperature_k=10.0, steps=200)
    assert counts(out) == counts(start) and info["accepted"] > 0
    assert gold_height(out) < gold_height(start)
    assert swaps(bulk("Cu", cubic=True), rng, gold_height, 300.0, 10) is None
    assert swaps(rutile(), rng, gold_height, 300.0, 10) is None  # no Ti-O exchanges


def test_strains_and_slabs_have_their_geometry():
    rng = np.random.default_rng(1)
    start = bulk("Cu", cubic=True) * (2, 2, 2)
    kinds = set()
    for _ in range(10):
        out, info = strain(start, rng, 0.05, stdev=0.0)
        eps = np.array(info["strain"])
        kinds.add(info["kind"])
        assert np.abs(eps).max() <= 0.05
        if info["kind"] == "shear":
            assert abs(np.trace(eps)) < 1e-4  # volume-preserving to first order
        else:
            assert np.allclose(eps, eps[0, 0] * np.eye(3))
    assert kinds == {"volume", "shear"}
    for _ in range(6):
        out, info = slab(bulk("Cu", "fcc", a=3.61), rng, max_atoms=64)
        assert out.pbc.all() and info["layers"] >= 2 and len(out) <= 64
        z = out.positions @ np.linalg.inv(out.cell.array)[:, 2]  # fractional along c
        thickness = (z.max() - z.min()) * np.linalg.norm(out.cell[2])
        assert np.linalg.norm(out.cell[2]) >= thickness + 2 * SLAB_VACUUM - 0.1  # vacuum each side
    big = bulk("Cu", cubic=True) * (3, 3, 3)  # slabs are cut from the primitive cell
    out, info = slab(big, np.random.default_rng(1), max_atoms=64)
    assert len(out) == info["layers"] == 4  # one atom per fcc layer in the smallest cell
    assert slab(big, rng, max_atoms=3, min_width=3.5) is None  # 2 or 4 per layer: not two layers
    wide, _ = slab(big, np.random.default_rng(1), max_atoms=64, min_width=6.0)
    a, b = wide.cell.array[:2]
    area = np.linalg.norm(np.cross(a, b))
    assert min(area / np.linalg.norm(a), area / np.linalg.norm(b)) >= 6.0 - 1e-6


def test_primitive_miller_maps_conventional_planes():
    fcc = bulk("Cu", "fcc", a=3.61)  # primitive cell
    conventional = bulk("Cu", "fcc", a=3.61, cubic=True)
    # fcc primitive vectors (0, a/2, a/2) ...: the (100) plane is (011) of the primitive basis
    assert primitive_miller(fcc, conventional, (1, 0, 0)) == (0, 1, 1)
    assert primitive_miller(fcc, conventional, (1, 1, 1)) == (1, 1, 1)


def test_physical_rejects_overlapping_atoms():
    atoms = bulk("Cu", cubic=True)
    assert physical(atoms) and physical(rattle(atoms, np.random.default_rng(0), 0.05)[0])
    atoms.positions[1] = atoms.positions[0] + [0.5, 0, 0]
    assert not physical(atoms)


def test_cu_si_tio2_get_different_sensible_schedules():
    cu, si, tio2 = (initial_decision(e, 0.05) for e in (["Cu"], ["Si"], ["O", "Ti"]))
    assert (cu.material, si.material, tio2.material) == ("metal", "covalent/ionic",
                                                          "covalent/ionic")
    assert (cu.melting_k, si.melting_k, tio2.melting_k) == pytest.approx((1357.77, 1687, 1941))
    for d in (cu, si, tio2):
        assert d.temperatures_k == sorted(d.temperatures_k) and d.temperatures_k[-1] < d.melting_k
        assert sum(d.ratios.values()) == pytest.approx(1.0, abs=1e-3) and d.reasons
    assert cu.temperatures_k == [339, 679, 1086] and tio2.temperatures_k == [388, 776, 1359]
    assert "antisite" not in cu.ratios and "swap" not in si.ratios and "swap" not in tio2.ratios
    assert initial_decision(["Au", "Cu"], 0.05).ratios["swap"] > 0  # an alloy exchanges
    assert cu.ratios["vacancy"] > si.ratios["vacancy"]  # metals: more point defects
    fixed = initial_decision(["Cu"], 0.05, temperatures_k=[500.0], pressures_gpa=[2.0])
    assert fixed.temperatures_k == [500.0] and fixed.pressures_gpa == [2.0]


def test_policy_reacts_to_halts():
    start = initial_decision(["O", "Ti"], 0.04)
    cooler = adapt(start, halts=3, md_runs=4, fixed_temperatures=False)
    assert all(c < t for c, t in zip(cooler.temperatures_k, start.temperatures_k, strict=True))
    assert cooler.max_strain < start.max_strain and "3/4 MD runs halted" in cooler.reasons[0]
    hotter = adapt(start, halts=0, md_runs=4, fixed_temperatures=False)
    assert all(h > t for h, t in zip(hotter.temperatures_k, start.temperatures_k, strict=True))
    assert hotter.max_strain > start.max_strain and hotter.ratios["vacancy"] > start.ratios["vacancy"]
    assert hotter.iteration == start.iteration + 1
    for _ in range(10):  # never hotter than a hot liquid
        hotter = adapt(hotter, halts=0, md_runs=4, fixed_temperatures=False)
    assert max(hotter.temperatures_k) <= 1.3 * start.melting_k and hotter.max_strain <= 0.1
    same = adapt(start, halts=1, md_runs=4, fixed_temperatures=False)
    assert same.temperatures_k == start.temperatures_k and "unchanged" in same.reasons[0]
    kept = adapt(start, halts=4, md_runs=4, fixed_temperatures=True)
    assert kept.temperatures_k == start.temperatures_k and kept.max_strain < start.max_strain


def test_embedded_cell_keeps_the_centre_neighbourhood():
    from ase.neighborlist import neighbor_list

    from pyacemaker.structures.embedding import embed

    parent = bulk("Cu", "fcc", a=3.61, cubic=True) * (6, 6, 6)  # 864 atoms
    parent.rattle(0.1, seed=4)
    cutoff, buffer, centre = 5.0, 2.0, 123
    cell, weights = embed(parent, centre, cutoff, buffer)
    assert len(cell) < len(parent) / 3 and physical(cell)

    def environment(atoms, index):
        i, d, vectors = neighbor_list("idD", atoms, cutoff)
        mine = i == index
        order = np.lexsort(vectors[mine].T)
        return d[mine][order], vectors[mine][order]

    d_parent, v_parent = environment(parent, centre)
    d_cell, v_cell = environment(cell, 0)
    np.testing.assert_allclose(d_cell, d_parent, atol=1e-10)
    np.testing.assert_allclose(v_cell, v_parent, atol=1e-10)
    distance = np.linalg.norm(cell.positions - cell.positions[0], axis=1)
    assert weights[0] == 1 and np.all(weights[distance > buffer] == 0)
    assert np.all(weights[distance <= buffer] == 1)


def test_random_symmetric_crystal_keeps_the_composition():
    from pyacemaker.config import DynamicsConfig, ExplorationConfig, SeedsConfig
    from pyacemaker.explore import StandardExplorer

    explorer = StandardExplorer(ExplorationConfig(), DynamicsConfig(), dispatcher=None,
                                seeds=SeedsConfig())
    made = explorer.random_crystal(rutile(), np.random.default_rng(3))
    assert made is not None
    atoms, info = made
    n = counts(atoms)
    assert n["O"] == 2 * n["Ti"] and len(atoms) <= 64 and physical(atoms, factor=0.5)
    assert info["generator"] == "random" and info["space_group"]
    start = rutile()
    assert atoms.get_volume() / len(atoms) == pytest.approx(start.get_volume() / len(start))


def test_policy_adds_npt_when_md_is_quiet_and_drops_it_when_it_halts():
    start = initial_decision(["Cu"], 0.04)
    assert start.pressures_gpa == []  # NVT at the equilibrated volume first
    quiet = adapt(start, halts=0, md_runs=3, fixed_temperatures=False)
    assert quiet.pressures_gpa == [0.0, 5.0] and "NPT" in quiet.reasons[0]
    rough = adapt(quiet, halts=3, md_runs=3, fixed_temperatures=False)
    assert rough.pressures_gpa == [] and "NVT only" in rough.reasons[0]
    user = initial_decision(["Cu"], 0.04, pressures_gpa=[2.0])
    assert adapt(user, 0, 3, False, fixed_pressures=True).pressures_gpa == [2.0]


def test_gamma_thresholds_follow_the_potential():
    start = initial_decision(["Cu"], 0.04, gamma=(5.0, 25.0))
    assert (start.gamma_collect, start.gamma_halt) == (5.0, 25.0)
    inaccurate = gamma_thresholds(start, (5.0, 25.0), held_out_gamma=8.0, accurate=False)
    assert (inaccurate.gamma_collect, inaccurate.gamma_halt) == (5.0, 25.0)
    assert "above targets" in inaccurate.reasons[-1]
    trusted = gamma_thresholds(start, (5.0, 25.0), held_out_gamma=6.0, accurate=True)
    assert trusted.gamma_collect == 9.0 and trusted.gamma_halt == 45.0  # 1.5 x 6, halt 5 x collect
    assert "up to γ 6" in trusted.reasons[-1]
    capped = gamma_thresholds(start, (5.0, 25.0), held_out_gamma=100.0, accurate=True)
    assert capped.gamma_collect == 12.5  # at most half the configured halt
    calm = gamma_thresholds(start, (5.0, 25.0), held_out_gamma=1.2, accurate=True)
    assert (calm.gamma_collect, calm.gamma_halt) == (5.0, 25.0)  # never below the configured


def test_the_hottest_conditions_are_the_cap_or_the_users():
    start = initial_decision(["Cu"], 0.04)
    assert not start.at_hottest
    hotter = start
    for _ in range(10):
        hotter = adapt(hotter, halts=0, md_runs=3, fixed_temperatures=False)
    assert hotter.at_hottest
    assert initial_decision(["Cu"], 0.04, temperatures_k=[300.0]).at_hottest


def test_relaxation_halts_where_the_potential_leaves_what_it_knows(copper_fit):
    from pyacemaker.explore import relax_until_halt
    from pyacemaker.validation.relax import relaxed

    potential, _, _ = copper_fit  # fitted to bulk only: an interstitial starts far outside it
    start, _ = interstitial(bulk("Cu", cubic=True) * (2, 2, 2), np.random.default_rng(0), 0.0)
    calc, path = potential.calculator(with_gamma=True), []
    relaxed(start, calc, fmax=0.02, max_steps=150,
            stop=lambda: path.append(float(np.max(calc.results["gamma"]))) or False)
    full = relax_until_halt(start, potential, np.inf)
    assert not full.halted and full.steps == len(path) - 1 and full.gamma == pytest.approx(path[-1])
    # a limit below the whole path: the start never enters the known region, so the
    # relaxation runs to its end, which is the candidate
    never = relax_until_halt(start, potential, min(path) / 2)
    assert never.halted and never.steps == full.steps and never.gamma == pytest.approx(path[-1])
    # a limit the path goes below and then above again: it halts at the first step beyond
    rise = next(i for i in range(1, len(path) - 1) if path[i + 1] > path[i] and path[i] < path[0])
    limit = (path[rise] + path[rise + 1]) / 2
    halted = relax_until_halt(start, potential, limit)
    assert halted.halted and halted.steps == rise + 1
    assert halted.gamma == pytest.approx(path[rise + 1]) and halted.gamma > limit


def test_rare_events_join_md_for_defects_or_when_md_at_the_hottest_finds_nothing():
    start = initial_decision(["Cu"], 0.04)
    assert not start.at_hottest
    assert not rare_events(start, "auto", defects=False, md_quiet=True).kmc
    with_defects = rare_events(start, "auto", defects=True, md_quiet=False)
    assert with_defects.kmc and "a start has defects" in with_defects.reasons[-1]
    hottest = start.model_copy(update={"temperatures_k": [round(HOTTEST * start.melting_k)]})
    assert not rare_events(hottest, "auto", defects=False, md_quiet=False).kmc  # MD still halts
    quiet = rare_events(hottest, "auto", defects=False, md_quiet=True)
    assert quiet.kmc and "hottest" in quiet.reasons[-1]
    assert rare_events(start, "always", defects=False, md_quiet=False).kmc
    assert not rare_events(quiet, "never", defects=True, md_quiet=True).kmc
    assert rare_events(start, "never", True, True).reasons == start.reasons
