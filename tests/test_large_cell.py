"""The large-cell test: the oracle's MD frames of a cell wider than twice the cutoff, cached,
and the potential graded on them. EMT Cu is the oracle (cheap and strictly local)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.spacegroup import crystal

from pyacemaker.config import Config, OracleConfig, TargetsConfig, ValidationConfig
from pyacemaker.validation import run
from pyacemaker.validation.large_cell import (
    cell_width,
    default_temperature,
    grade_large_cell,
    large_cell_frames,
    large_supercell,
)
from pyacemaker.validation.report import render
from pyacemaker.validation.validate import ValidationResult
from tests.test_validation import CountingEMT, broken_copy


def rutile():
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                   cellpar=[4.59, 4.59, 2.96, 90, 90, 90])


def test_supercell_is_wider_than_twice_the_cutoff():
    cu = bulk("Cu", "fcc", a=3.61)  # primitive: widths 2.08 Angstrom
    for cutoff in (4.0, 5.28, 6.4):
        supercell = large_supercell(cu, cutoff)
        assert cell_width(supercell) > 2 * cutoff
        assert cell_width(cu.repeat([n - 1 for n in supercell.info["supercell"]])) < 2 * cutoff
    tio2 = large_supercell(rutile(), 6.4)  # the 270-atom cell of DESIGN.md's measurements
    assert tio2.info["supercell"] == [3, 3, 5] and len(tio2) == 270
    assert tio2.get_chemical_formula(mode="metal", empirical=True) == "TiO2"
    assert (default_temperature(rutile()), default_temperature(cu)) == (600.0, 400.0)


@pytest.fixture(scope="module")
def cu_frames(tmp_path_factory):
    """(frames, path, built oracles): EMT MD frames of 216-atom Cu, computed once."""
    built: list[CountingEMT] = []
    path = tmp_path_factory.mktemp("large") / "validation" / "large_cell.extxyz"
    frames = large_cell_frames(bulk("Cu", "fcc", a=3.61), 5.28, ValidationConfig(),
                               OracleConfig(engine="emt"), lambda: built.append(CountingEMT()) or built[-1],
                               path, show_progress=False)
    return frames, path, built


def test_frames_are_labelled_thermalised_and_cached(cu_frames):
    frames, path, built = cu_frames
    assert len(built) == 1 and built[0].calls == 20 + 7 * 5 + 1  # one call per MD step
    assert len(frames) == 8 and path.is_file()
    assert [f.info["step"] for f in frames] == list(range(20, 56, 5))
    assert all(len(f) == 216 and cell_width(f) > 2 * 5.28 for f in frames)
    kinetic = np.mean([f.info["kinetic_temperature_k"] for f in frames])
    assert 320 < kinetic < 480  # thermostat at 400 K
    moved = np.linalg.norm(frames[-1].positions - frames[0].positions, axis=1)
    assert 0.02 < moved.mean() < 0.5  # the frames differ, and the crystal holds
    emt = frames[3].copy()
    emt.calc = EMT()
    assert np.allclose(frames[3].get_forces(), emt.get_forces(), atol=1e-6)  # extxyz: 8 decimals
    assert frames[3].get_potential_energy() == pytest.approx(emt.get_potential_energy())
    assert frames[3].get_stress() == pytest.approx(emt.get_stress())


def test_cached_frames_are_reused_and_keyed(cu_frames):
    frames, path, built = cu_frames
    cu = bulk("Cu", "fcc", a=3.61)
    settings, emt = ValidationConfig(), OracleConfig(engine="emt")

    def count():
        built.append(CountingEMT())
        return built[-1]

    again = large_cell_frames(cu, 5.28, settings, OracleConfig(engine="emt", workers=3), count, path,
                              show_progress=False)
    assert len(built) == 1  # read back: the oracle not even built
    assert all(np.array_equal(a.positions, b.positions) and
               np.array_equal(a.get_forces(), b.get_forces()) for a, b in zip(again, frames, strict=True))
    fewer = settings.model_copy(update={"large_cell_frames": 2})
    assert len(large_cell_frames(cu, 5.28, fewer, emt, count, path, show_progress=False)) == 2
    assert len(built) == 2 and built[1].calls == 20 + 5 + 1  # another key: computed again
    repeated = large_cell_frames(cu, 5.28, fewer, emt, count, path, show_progress=False)
    assert len(built) == 2  # the file now holds the 2-frame key
    # the same inputs give the same frames (seeded): the 2 frames are the first 2 of the 8
    assert np.allclose(repeated[1].positions, frames[1].positions)


def test_dft_oracle_or_switched_off_is_not_run_with_a_reason(tmp_path):
    path, cu = tmp_path / "large_cell.extxyz", bulk("Cu", "fcc", a=3.61)
    espresso = OracleConfig(engine="espresso")
    reason = large_cell_frames(cu, 5.28, ValidationConfig(), espresso, lambda: run.cheap_oracle(espresso),
                               path, show_progress=False)
    assert isinstance(reason, str) and "espresso" in reason and "calculator engine" in reason
    assert "emt" in reason and not path.exists()
    off = ValidationConfig(large_cell=False)
    assert "validation.large_cell: false" in large_cell_frames(cu, 5.28, off, OracleConfig(engine="emt"),
                                                               EMT, path, show_progress=False)
    result, checks = grade_large_cell(reason, EMT(), 5.28, TargetsConfig())
    assert result is None and [c.name for c in checks] == ["large-cell energy RMSE", "large-cell force RMSE"]
    assert all(c.passed is None and c.detail == reason for c in checks)


def test_fitted_potential_passes_and_broken_one_fails(cu_frames, copper_fit, tmp_path):
    frames, _, _ = cu_frames
    potential, _, _ = copper_fit
    targets = TargetsConfig()
    good, checks = grade_large_cell(frames, potential.calculator(), potential.cutoff, targets)
    assert good.n_atoms == 216 and good.n_frames == 8 and good.supercell == [6, 6, 6]
    assert good.temperature_k == 400.0 and good.width > 2 * potential.cutoff
    assert all(c.passed for c in checks), checks
    assert good.errors.force_rmse < 0.03 and good.errors.stress_rmse is not None
    broken = broken_copy(potential, tmp_path / "broken", scale=0.8)
    bad, checks = grade_large_cell(frames, broken.calculator(), broken.cutoff, targets)
    verdict = {c.name: c.passed for c in checks}
    assert verdict == {"large-cell energy RMSE": False, "large-cell force RMSE": False}
    assert bad.errors.force_rmse > 2 * good.errors.force_rmse


def test_validate_in_run_grades_and_reports_the_large_cell(copper_fit, tmp_path, monkeypatch):
    built: list[CountingEMT] = []
    monkeypatch.setattr(run, "cheap_oracle", lambda settings: built.append(CountingEMT()) or built[-1])
    config = Config(composition="Cu", workdir=tmp_path, oracle=OracleConfig(engine="emt"),
                    validation=ValidationConfig(phonon_min_width=5.0, large_cell_frames=2,
                                                large_cell_temperature=300.0))
    potential, _, _ = copper_fit
    fcc = bulk("Cu", "fcc", a=3.6)
    result = run.validate_in_run(potential, config, tmp_path, fcc, show_progress=False)
    assert len(built) == 2  # the oracle's reference, then its large-cell MD
    assert (tmp_path / "validation" / "large_cell.extxyz").is_file()
    lc = result.large_cell
    assert lc.n_frames == 2 and lc.temperature_k == 300.0 and lc.n_atoms == 216
    force = next(c for c in result.checks if c.name == "large-cell force RMSE")
    assert force.passed is True and "216-atom" in force.detail
    html = render(ValidationResult.model_validate_json(result.model_dump_json()))
    assert 'id="large-cell"' in html and "oracle MD of a large cell" in html
    again = run.validate_in_run(potential, config, tmp_path, fcc, show_progress=False)
    assert len(built) == 2 and again.large_cell == lc  # both read back from the cache
