"""The oracle's locality probe with real calculators: EMT (short-ranged), Lennard-Jones with a
12 Å cutoff (long-tailed); its cache in the workdir; ``doctor --config``; the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.config import config_from_dict
from pyacemaker.oracle.locality import LocalityProbe, LocalitySettings, probe_cell, probe_locality
from pyacemaker.validation import locality as cached
from pyacemaker.validation.report import render

LJ = {"sigma": 2.3, "epsilon": 0.4, "rc": 12.0}  # Cu-like spacing, a long tail


def copper() -> Atoms:
    return bulk("Cu", "fcc", a=3.61)


def test_probe_cell_is_wide_enough_with_the_fewest_atoms():
    cell, matrix = probe_cell(copper(), 5.0, 1.0)
    widths = cell.cell.volume / np.linalg.norm(np.cross(cell.cell[[1, 2, 0]], cell.cell[[2, 0, 1]]), axis=1)
    assert widths.min() > 11.0
    assert len(cell) == 6**3 and matrix == [[6, 0, 0], [0, 6, 0], [0, 0, 6]]  # conventional: 4 * 4^3
    conventional, _ = probe_cell(copper(), 6.0, 1.0)
    assert len(conventional) == 4 * 4**3  # primitive: 7^3


def test_emt_forces_do_not_reach_beyond_its_range():
    # EMT's neighbour list ends at rc_list = 5.88 Å for Cu; through the embedding of the
    # neighbours a force feels a little further (1e-4 eV/Å at 6 Å), nothing above 1e-6 at 8 Å
    probe = probe_locality(copper(), EMT(), 4.0, LocalitySettings(radii=[3.0, 8.0]), "emt")
    assert probe.radii == [3.0, 4.0, 8.0]
    assert probe.n_calls == 1 + 3 * 2 and probe.n_atoms == 500
    assert probe.force_spread[0] > 1e-3  # atoms beyond 3 Å: second neighbours and on
    assert probe.force_spread[-1] < 1e-6 and probe.floor[-1] < 1e-6
    assert probe.force_spread_by_element["Cu"] == probe.force_spread
    assert "cutoff 4 Å" in probe.sentence()


def test_a_long_tailed_oracle_shows_a_floor_at_5_angstrom():
    probe = probe_locality(copper(), LennardJones(**LJ), 5.0, LocalitySettings(radii=[5.0]), "lj")
    assert probe.radii == [5.0] and probe.n_atoms == 216
    assert probe.force_spread[0] > 1e-3
    assert probe.floor[0] == pytest.approx(probe.force_spread[0] / np.sqrt(2))
    assert f"below {probe.floor[0]:.3g} eV/Å" in probe.sentence()


def test_radii_whose_cell_is_too_big_are_left_out_but_never_the_cutoff():
    probe = probe_locality(copper(), EMT(), 6.0, LocalitySettings(radii=[3.0, 9.0], max_atoms=100),
                           "emt")
    assert probe.radii == [3.0, 6.0] and probe.n_atoms > 100  # 9 Å dropped; 6 Å needs 500 atoms


def config(tmp_path, engine: str, **oracle):
    return config_from_dict({"composition": "Cu", "workdir": str(tmp_path / "run"),
                             "oracle": {"engine": engine, **oracle}, "trainer": {"cutoff": 5.0}})


def test_the_probe_is_cached_in_the_workdir_and_reused(tmp_path, monkeypatch):
    settings = config(tmp_path, "ase:ase.calculators.lj:LennardJones", parameters=LJ)
    small = LocalitySettings(factors=[1.0])
    first = cached.run_locality(copper(), settings, settings.workdir, small)
    stored = json.loads((settings.workdir / "validation" / "locality.json").read_text())
    assert stored["probe"]["force_spread"] == first.force_spread

    def no_second_call(*args, **kwargs):
        raise AssertionError("the oracle was called again")
    monkeypatch.setattr(cached, "probe_locality", no_second_call)
    assert cached.run_locality(copper(), settings, settings.workdir, small) == first
    other = settings.model_copy(update={"oracle": settings.oracle.model_copy(
        update={"parameters": {**LJ, "epsilon": 0.5}})})
    assert cached.cached_locality(copper(), other, settings.workdir, small) is None  # new key


def test_a_dft_oracle_is_probed_only_on_request(tmp_path):
    settings = config(tmp_path, "espresso")
    assert cached.run_locality(copper(), settings, settings.workdir) is None
    assert not (settings.workdir / "validation").exists()


def test_doctor_prints_the_locality_table(tmp_path, monkeypatch):
    from pyacemaker import doctor

    monkeypatch.setattr(doctor, "python_packages", list)  # importing torch: seconds, tested elsewhere
    path = tmp_path / "cu.yaml"
    path.write_text(f"composition: Cu\nworkdir: {tmp_path / 'run'}\noracle: {{engine: emt}}\n"
                    "trainer: {cutoff: 5.0}\n")
    result = CliRunner().invoke(app, ["doctor", "--check", "--config", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "oracle locality: emt" in result.output and "5 (cutoff)" in result.output
    assert "no local potential of cutoff 5 Å fits this oracle below" in result.output
    assert (tmp_path / "run" / "validation" / "locality.json").is_file()


def test_doctor_says_how_to_probe_a_dft_oracle(tmp_path):
    from pyacemaker.cli import _probe_locality, console

    settings = config(tmp_path, "espresso")
    with console.capture() as capture:
        _probe_locality(settings, tmp_path / "qe.yaml", expensive=False)
    assert "--locality" in capture.get() and not settings.workdir.exists()


def test_the_report_shows_the_probe():
    from pyacemaker.validation.validate import ValidationResult

    probe = LocalityProbe(oracle="chgnet", cutoff=6.4, radii=[5.0, 6.4], force_spread=[0.3, 0.12],
                          force_spread_by_element={"Ti": [0.32, 0.12], "O": [0.1, 0.05]},
                          floor=[0.21, 0.085], n_atoms=480, supercell_matrix=np.eye(3).tolist(),
                          n_calls=9, seconds=20.0, settings=LocalitySettings())
    result = ValidationResult(potential="p", created="2025-01-01T00:00:00Z", seconds=1.0,
                              passed=True, checks=[], locality=probe)
    html = render(result)
    assert 'id="locality"' in html and "6.4 (cutoff)" in html
    assert "no local potential of cutoff 6.4 Å fits this oracle below 0.085 eV/Å" in html
    assert 'id="locality"' not in render(result.model_copy(update={"locality": None}))
