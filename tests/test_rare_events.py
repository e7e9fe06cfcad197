"""Saddle searches, NEB and kinetic Monte Carlo with a trained potential, against EMT itself."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
import yaml
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.db import connect
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.kmc import GENERATOR, KMCRun, choose, run_kmc
from pyacemaker.saddles import (
    Extrapolating,
    GuardedCalculator,
    connected_minimum,
    dimer_search,
    max_displacement,
    minimized,
    neb_path,
    rate,
    vineyard_prefactor,
)
from pyacemaker.state import WorkflowState
from pyacemaker.structures import defect_atoms
from tests.conftest import vacancy_hop

HALT = 25.0


def test_defect_atoms_are_the_vacancys_neighbours():
    initial, _ = vacancy_hop()
    assert len(defect_atoms(bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2))) == 0
    found = defect_atoms(initial)
    assert len(found) == 12  # fcc: the vacancy's 12 nearest neighbours lost one bond each
    assert np.allclose(_to_site(initial, found, np.zeros(3)), 3.61 / np.sqrt(2))  # site of atom 0


def _to_site(atoms: Atoms, indices: np.ndarray, site: np.ndarray) -> np.ndarray:
    from ase.geometry import find_mic

    vectors, _ = find_mic(atoms.positions[indices] - site, atoms.cell, atoms.pbc)
    return np.linalg.norm(vectors, axis=1)


def hop_found_by_dimer(potential, calc: GuardedCalculator, seed: int):
    """(minimum, saddle, final minimum) of the first dimer search from the relaxed vacancy
    cell that joins it to another minimum."""
    initial, _ = vacancy_hop()
    minimum = minimized(initial, calc)
    rng = np.random.default_rng(seed)
    for _ in range(6):  # a random displacement may climb elsewhere; most find the hop
        saddle = dimer_search(minimum, calc, rng, int(rng.choice(defect_atoms(minimum))))
        final = None if saddle is None else connected_minimum(minimum, saddle, calc)
        if final is not None:
            return minimum, saddle, final
    raise AssertionError("six dimer searches found no process")


def test_vacancy_hop_barrier_of_the_emt_trained_potential_matches_emts_neb(vacancy_fit):
    initial, final = vacancy_hop()
    reference = neb_path(minimized(initial, EMT()), minimized(final, EMT()), EMT())
    calc = GuardedCalculator(vacancy_fit, HALT)  # every force call checked: no halt here
    minimum, saddle, hopped = hop_found_by_dimer(vacancy_fit, calc, seed=5)
    band = neb_path(minimum, hopped, calc, via=saddle.atoms)
    assert 0.5 < reference.barrier < 1.0  # EMT's Cu vacancy hop in this cell: ~0.76 eV
    assert abs(band.barrier - reference.barrier) < 0.05
    assert abs(saddle.energy - band.energies[0] - band.barrier) < 0.02  # dimer and NEB agree
    assert abs(band.barrier - band.reverse_barrier) < 0.01  # the hop is symmetric
    assert max_displacement(minimum, hopped) > 2.0  # one atom moved a whole bond
    assert calc.max_gamma < HALT and calc.calls > 100
    prefactor = vineyard_prefactor(band.images[0], band.images[band.top], calc)
    assert prefactor is not None and 1e12 < prefactor < 1e14  # a metal's attempt frequency
    assert rate(band.barrier, prefactor, 600.0) == pytest.approx(
        prefactor * np.exp(-band.barrier / (units.kB * 600.0)), rel=1e-12)


def test_poorly_trained_potential_halts_the_search_and_returns_the_configuration(copper_fit):
    bulk_only, _, _ = copper_fit  # trained on rattled bulk: never saw a vacancy hop
    initial, _ = vacancy_hop()
    calc = GuardedCalculator(bulk_only, HALT)
    with pytest.raises(Extrapolating) as halted:
        minimum = minimized(initial, calc)
        rng = np.random.default_rng(0)
        for _ in range(6):
            dimer_search(minimum, calc, rng, int(rng.choice(defect_atoms(minimum))))
    assert halted.value.gamma > HALT and len(halted.value.atoms) == 31
    probe = halted.value.atoms.copy()
    probe.calc = bulk_only.calculator(with_gamma=True)
    probe.get_potential_energy()
    assert np.max(probe.calc.results["gamma"]) == pytest.approx(halted.value.gamma, rel=1e-6)


def test_kmc_run_with_a_poor_potential_halts_with_candidates(copper_fit):
    bulk_only, _, _ = copper_fit
    initial, _ = vacancy_hop()
    run = KMCRun("kmc00", "file:vacancy", initial, 600.0, steps=2, searches=3, gamma_collect=5.0,
                 gamma_halt=HALT, prefactor_hz=None, neb_images=5, seed=1)
    outcome = run_kmc(bulk_only.files(), run)
    assert outcome.status == "halted" and outcome.steps == 0 and outcome.error is None
    again = run_kmc(bulk_only.files(), run)  # a resumed run explores the same way
    assert [c.gamma for c in again.candidates] == [c.gamma for c in outcome.candidates]
    halted = [c for c in outcome.candidates if c.gamma > HALT]
    assert halted and all(c.provenance["generator"] == GENERATOR for c in halted)
    assert {c.provenance["stage"] for c in halted} <= {"dimer", "relaxation", "neb", "prefactor"}


def test_kmc_run_with_the_trained_potential_hops_the_vacancy(vacancy_fit):
    initial, _ = vacancy_hop()
    run = KMCRun("kmc00", "file:vacancy", initial, 600.0, steps=1, searches=3, gamma_collect=5.0,
                 gamma_halt=1e6, prefactor_hz=1e13, neb_images=3, seed=2)
    outcome = run_kmc(vacancy_fit.files(), run)
    assert outcome.status == "completed" and outcome.steps == 1 and outcome.time_s > 0
    hops = [p for p in outcome.processes if p.moved_atoms == 1]
    assert hops and all(abs(p.barrier_ev - 0.76) < 0.08 for p in hops)
    assert sum(p.chosen for p in outcome.processes) == 1
    assert all(p.prefactor_from == "config" and p.prefactor_hz == 1e13 for p in outcome.processes)


def test_residence_time_choice_follows_the_rates():
    from pyacemaker.kmc import Process
    from pyacemaker.records import ProcessRecord

    def process(rate_hz: float) -> Process:
        record = ProcessRecord(run="r", step=0, barrier_ev=0.5, reverse_barrier_ev=0.5,
                               prefactor_hz=1e13, prefactor_from="config", temperature_k=300,
                               rate_hz=rate_hz, saddle_gamma=1.0, moved_atoms=1)
        return Process(record, Atoms(), Atoms(), 1.0, 1.0)

    rng = np.random.default_rng(0)
    picks = [choose([process(1.0), process(3.0)], rng) for _ in range(4000)]
    share = np.mean([index for index, _ in picks])
    assert share == pytest.approx(0.75, abs=0.03)
    assert np.mean([waited for _, waited in picks]) == pytest.approx(1 / 4.0, rel=0.06)


def test_kmc_strategy_in_a_copper_loop_with_a_vacancy(tmp_path):
    """The policy turns kMC on for a start with a vacancy; halted searches are labelled; the
    report lists the processes found per iteration."""
    initial, _ = vacancy_hop()
    ase.io.write(tmp_path / "cu_vacancy.extxyz", initial)
    ase.io.write(tmp_path / "cu.extxyz", bulk("Cu", "fcc", a=3.61))
    config = {
        "composition": "Cu", "workdir": str(tmp_path / "run"), "oracle": {"engine": "emt"},
        "seeds": {"files": [str(tmp_path / "cu_vacancy.extxyz")]},
        "budget": {"max_iterations": 2, "max_labels": 60},
        "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
        "exploration": {"seed_labels": 16, "labels_per_iteration": 8, "md_steps": 30,
                        "md_temperatures": [700],
                        "rare_events": {"runs": 1, "kmc_steps": 2, "searches": 3}},
        "trainer": {"kind": "linear"},
        "validation": {"structure": str(tmp_path / "cu.extxyz")},  # the vacancy cell is slow
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "config.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    state = WorkflowState.load(tmp_path / "run")
    explored = [r for r in state.history if r.iteration > 0]
    assert all(r.policy.kmc and r.kmc_runs == 1 for r in explored)
    assert any("a start has defects" in reason for reason in explored[0].policy.reasons)
    halted = [row for row in connect(str(tmp_path / "run" / "dataset.db")).select(generator=GENERATOR)
              if row.get("gamma", 0) > HALT]
    assert sum(r.kmc_halts for r in explored) >= 1 and halted  # halted searches were labelled
    assert all(row.status == "labelled" and row.iteration > 0 for row in halted)
    processes = [p for r in explored for p in r.processes]
    hops = [p for p in processes if p.moved_atoms == 1]
    assert hops and all(abs(p.barrier_ev - 0.76) < 0.1 and p.rate_hz > 0 for p in hops)
    report = (tmp_path / "run" / "validation_report.html").read_text()
    assert 'id="processes"' in report and "Rare events" in report
    assert all(f"{p.barrier_ev:.3f}" in report for p in processes)
