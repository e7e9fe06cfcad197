"""Validation of fitted potentials with real pyace, phonopy and EMT as the reference."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.spacegroup import crystal
from ase.units import GPa
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.config import Config, OracleConfig, TargetsConfig, TrainerConfig, ValidationConfig
from pyacemaker.training.potential import Potential
from pyacemaker.validation import run
from pyacemaker.validation.compare import phonon_check
from pyacemaker.validation.report import REPORT_FILE, RESULT_FILE, render, summary_table, write_report
from pyacemaker.validation.validate import (
    Check,
    StructureSummary,
    ValidationResult,
    cell_formula,
    reduced_formula,
    validate,
)


def emt_bulk_modulus() -> float:
    """EMT's own Birch-Murnaghan bulk modulus of fcc Cu (GPa), independent of the validator."""
    volumes, energies = [], []
    for a in np.linspace(3.52, 3.66, 9):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    _, _, b0 = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    return b0 / GPa


@pytest.fixture(scope="module")
def cu_result(copper_fit, copper_data) -> ValidationResult:
    potential, _, _ = copper_fit
    held_out = copper_data[1]
    return validate(potential, bulk("Cu", "fcc", a=3.6), ValidationConfig(), TargetsConfig(),
                    held_out, oracle=EMT(), show_progress=False)


def broken_copy(potential: Potential, folder, scale: float, rank: int | None = None) -> Potential:
    """The potential with every ACE coefficient (of basis functions of body order ``rank`` + 1
    when given) multiplied by ``scale``: a deliberately broken fit, same files, wrong energies.
    A uniform scale keeps the equilibrium and scales B0, C_ij and the squared phonon
    frequencies; scaling the pair terms (rank 1) alone moves the equilibrium."""
    shutil.copytree(potential.folder, folder)
    data = yaml.safe_load((folder / "potential.yaml").read_text())
    for block in data["species"]:
        for function in block["nbody"]:
            if rank is None or len(function["nr"]) == rank:
                function["c"] = [scale * c for c in function["c"]]
    (folder / "potential.yaml").write_text(yaml.safe_dump(data))
    return Potential.load(folder)


def checks(result: ValidationResult) -> dict[str, bool | None]:
    return {c.name: c.passed for c in result.checks}


def test_emt_trained_copper_passes_every_check(cu_result):
    assert cu_result.passed, [c for c in cu_result.checks if c.passed is False]
    assert all(checks(cu_result).values())
    assert cu_result.phonons.stable and cu_result.phonons.min_frequency_thz > -0.1
    assert cu_result.elastic.born_stable and cu_result.elastic.crystal_system == "cubic"
    assert all(cu_result.elastic.conditions.values())


def test_bulk_modulus_within_five_percent_of_emt(cu_result):
    emt = emt_bulk_modulus()
    assert cu_result.eos.b0_gpa == pytest.approx(emt, rel=0.05)
    assert cu_result.eos_oracle.b0_gpa == pytest.approx(emt, rel=0.01)  # same reference, same cells
    # the elastic constants give the same bulk modulus, (C11 + 2 C12) / 3, as the EOS
    assert cu_result.elastic.bulk_voigt_gpa == pytest.approx(cu_result.eos.b0_gpa, rel=0.03)


def test_held_out_metrics_match_the_fit(cu_result, copper_fit):
    _, fit, _ = copper_fit
    overall = cu_result.metrics.overall
    assert overall.n_structures == 20
    assert overall.energy_rmse == pytest.approx(fit.test_energy_rmse, rel=1e-3)
    assert overall.force_rmse == pytest.approx(fit.test_force_rmse, rel=1e-3)
    assert 0 < overall.stress_rmse < 0.1  # GPa: the EMT labels carry stress, and it was fitted


def test_unstable_structure_fails_with_reasons(copper_fit):
    """bcc Cu is mechanically and dynamically unstable (C11 < C12 in EMT and DFT); the
    EMT-trained potential must say so."""
    potential, _, _ = copper_fit
    result = validate(potential, bulk("Cu", "bcc", a=2.87), ValidationConfig(), show_progress=False)
    assert not result.passed
    failed = {c.name: c for c in result.checks if c.passed is False}
    assert "Born stability" in failed and "C11 - C12 > 0" in failed["Born stability"].detail
    assert "phonons" in failed and "imaginary at q" in failed["phonons"].detail
    assert result.phonons.min_frequency_thz < -0.1


def test_broken_potential_fails_against_the_oracle(copper_fit, copper_data, tmp_path):
    potential, _, _ = copper_fit
    broken = broken_copy(potential, tmp_path / "broken", scale=0.5)
    result = validate(broken, bulk("Cu", "fcc", a=3.6), ValidationConfig(), TargetsConfig(),
                      copper_data[1], oracle=EMT(), show_progress=False)
    assert not result.passed
    verdict = checks(result)
    assert verdict["bulk modulus vs oracle"] is False
    assert verdict["held-out energy RMSE"] is False
    detail = next(c.value for c in result.checks if c.name == "bulk modulus vs oracle")
    assert "GPa" in detail and "%" in detail


COMPARISONS = ("lattice vs oracle", "bulk modulus vs oracle", "elastic constants vs oracle", "phonons")


def by_name(result: ValidationResult) -> dict[str, Check]:
    return {c.name: c for c in result.checks}


def test_emt_copper_matches_emt_property_by_property(cu_result):
    """Each at its own equilibrium, the EMT-trained potential reproduces EMT's lattice, B0, C_ij
    and phonons far inside the tolerances."""
    verdict = checks(cu_result)
    assert all(verdict[name] is True for name in COMPARISONS)
    comparison, reference = cu_result.comparison, cu_result.oracle_reference
    assert reference.failures == {} and cu_result.oracle == "EMT"
    assert reference.structure.cell_parameters[0] == pytest.approx(3.59 / np.sqrt(2), rel=0.01)
    assert max(abs(x) for x in comparison.lattice.relative) < 0.002
    assert reference.eos.bracketed and reference.eos.v0 == pytest.approx(
        reference.structure.volume_per_atom, rel=1e-3)  # the oracle's E(V) is around its own minimum
    assert abs(cu_result.eos.b0_gpa / reference.eos.b0_gpa - 1) < 0.02
    assert comparison.elastic.worst in comparison.elastic.components
    assert max(abs(d) for d in comparison.elastic.deviation) < 0.05
    assert reference.elastic.bulk_voigt_gpa == pytest.approx(reference.eos.b0_gpa, rel=0.03)
    assert comparison.phonons.mesh_rms_thz < 0.05 and comparison.phonons.path_max_thz < 0.1
    assert comparison.phonons.oracle_worst_q is None  # EMT fcc Cu is stable
    assert reference.phonons.displacement == cu_result.phonons.displacement == 0.03
    assert reference.phonons.supercell_matrix == cu_result.phonons.supercell_matrix
    assert reference.phonons.path == cu_result.phonons.path
    assert "stable, as the oracle" in by_name(cu_result)["phonons"].detail


def test_uniformly_scaled_potential_fails_b0_elastic_and_phonons(copper_fit, tmp_path):
    """Coefficients x 0.8: same equilibrium (lattice passes), B0 and C_ij -20%, frequencies
    -11%: each of those comparisons fails and says why."""
    potential, _, _ = copper_fit
    broken = broken_copy(potential, tmp_path / "broken", scale=0.8)
    result = validate(broken, bulk("Cu", "fcc", a=3.6), ValidationConfig(), oracle=EMT(),
                      show_progress=False)
    found = by_name(result)
    assert found["lattice vs oracle"].passed is True
    b0 = found["bulk modulus vs oracle"]
    assert b0.passed is False and float(b0.value.split("%")[0]) == pytest.approx(-20, abs=1)
    elastic = found["elastic constants vs oracle"]
    assert elastic.passed is False and result.comparison.elastic.worst in elastic.value
    assert "C11" in elastic.detail and "C44" in elastic.detail and "beyond the tolerance" in elastic.detail
    assert found["phonons"].passed is False and "RMS above the tolerance" in found["phonons"].detail
    assert 0.5 < result.comparison.phonons.mesh_rms_thz < 1.0
    assert "stable, as the oracle" in found["phonons"].detail  # the verdict itself agrees


def test_pair_terms_scaled_fail_the_lattice_only(copper_fit, tmp_path):
    """Pair (rank-1) coefficients x 1.1 move the minimum (a about -1%, the volume about -3%): the
    lattice comparison fails while B0, C_ij and phonons stay within their tolerances."""
    potential, _, _ = copper_fit
    broken = broken_copy(potential, tmp_path / "broken", scale=1.1, rank=1)
    result = validate(broken, bulk("Cu", "fcc", a=3.6), ValidationConfig(), oracle=EMT(),
                      show_progress=False)
    found = by_name(result)
    lattice = found["lattice vs oracle"]
    assert lattice.passed is False and "volume" in lattice.value and "%" in lattice.value
    assert -0.02 < result.comparison.lattice.relative[0] < -0.005
    assert all(found[name].passed for name in COMPARISONS[1:])


def test_oracle_instability_is_the_verdict_to_reach(copper_fit):
    """bcc Cu is unstable at N for EMT; the potential passes the phonon check by being unstable
    there too, and fails it when it is stable where the oracle is not (or the reverse)."""
    potential, _, _ = copper_fit
    result = validate(potential, bulk("Cu", "bcc", a=2.87), ValidationConfig(), oracle=EMT(),
                      show_progress=False)
    oracle, mine, deviation = result.oracle_reference.phonons, result.phonons, result.comparison.phonons
    assert not oracle.stable and not mine.stable
    assert deviation.oracle_worst_thz < -1.0 and deviation.potential_imaginary_at_oracle_worst
    found = by_name(result)["phonons"]
    assert found.passed is True and "unstable like the oracle" in found.detail
    stable = mine.model_copy(update={"stable": True, "imaginary": []})
    real_there = deviation.model_copy(update={"potential_imaginary_at_oracle_worst": False,
                                              "potential_at_oracle_worst_thz": 1.0})
    missed = phonon_check(stable, oracle, real_there, 0.5)
    assert missed.passed is False and "NOT unstable like the oracle" in missed.detail
    invented = phonon_check(mine, oracle.model_copy(update={"stable": True, "imaginary": []}),
                            deviation, 0.5)
    assert invented.passed is False and "where the oracle is stable" in invented.detail


def test_dft_oracle_gives_not_applicable_comparisons(copper_fit):
    potential, _, _ = copper_fit
    result = validate(potential, bulk("Cu", "fcc", a=3.6), ValidationConfig(), oracle_name="espresso",
                      show_progress=False)
    found = by_name(result)
    for name in COMPARISONS[:3]:
        assert found[name].passed is None
        assert found[name].detail == ("the oracle (espresso) is not cheap enough to run the validation "
                                      "cells; compare against DFT by hand")
    assert found["phonons"].passed is True and "espresso" in found["phonons"].detail
    assert result.passed and result.oracle_reference is None and result.comparison is None


class CountingEMT(EMT):
    """EMT that counts its calculations (the oracle stand-in of the cache test)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def calculate(self, *args, **kwargs) -> None:
        self.calls += 1
        super().calculate(*args, **kwargs)


def test_oracle_reference_is_cached_per_structure(copper_fit, tmp_path, monkeypatch):
    built: list[CountingEMT] = []
    monkeypatch.setattr(run, "cheap_oracle", lambda settings: built.append(CountingEMT()) or built[-1])
    config = Config(composition="Cu", workdir=tmp_path, oracle=OracleConfig(engine="emt"),
                    validation=ValidationConfig(phonon_min_width=5.0, large_cell=False),
                    trainer=TrainerConfig(cutoff=4.0))
    fcc = bulk("Cu", "fcc", a=3.6)  # the large cell's oracle MD: tests/test_large_cell.py
    first = run.run_reference(fcc, config, tmp_path, show_progress=False)
    assert len(built) == 1 and built[0].calls > 20
    assert (tmp_path / "validation" / "oracle_reference.json").is_file()
    again = run.run_reference(fcc.copy(), config, tmp_path, show_progress=False)
    assert len(built) == 1 and again == first  # read back, the oracle not even built
    more_workers = config.model_copy(update={"oracle": OracleConfig(engine="emt", workers=7)})
    assert run.run_reference(fcc, more_workers, tmp_path, show_progress=False) == first
    potential, _, _ = copper_fit
    result = run.validate_in_run(potential, config, tmp_path, fcc, show_progress=False)
    assert len(built) == 1 and result.oracle_reference == first and result.oracle == "emt"
    assert result.locality.radii == [3.2, 4.0, 5.0] and result.locality.oracle == "emt"
    assert (tmp_path / "validation" / "locality.json").is_file()  # a diagnostic, not a check:
    assert not any("locality" in c.name for c in result.checks)
    assert result.composition == config.composition
    assert checks(result)["lattice vs oracle"] is True
    strained = bulk("Cu", "fcc", a=3.65)  # another structure: computed again
    run.run_reference(strained, config, tmp_path, show_progress=False)
    assert len(built) == 2 and built[1].calls > 20
    assert run.run_reference(strained, config, tmp_path, show_progress=False) is not None
    assert len(built) == 2


def test_report_files_round_trip(cu_result, tmp_path):
    path = write_report(cu_result, tmp_path)
    assert path == tmp_path / REPORT_FILE
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 4  # parity, error vs gamma, EOS, phonons
    assert "PASS" in html and "http" not in html.replace("http-equiv", "")
    stored = ValidationResult.model_validate_json((tmp_path / RESULT_FILE).read_text())
    assert stored.passed and stored.eos.b0_gpa == cu_result.eos.b0_gpa
    assert stored.composition == "Cu" and "<title>pyacemaker validation: Cu</title>" in html
    assert stored.comparison == cu_result.comparison and stored.oracle_reference == cu_result.oracle_reference
    for table in ('id="lattice"', 'id="elastic-comparison"', 'id="phonon-deviation"', "C44", "Oracle (EMT)"):
        assert table in html


def test_cli_validates_a_potential_with_a_structure_file(copper_fit, tmp_path):
    _, _, folder = copper_fit
    structure = tmp_path / "cu.cif"
    bulk("Cu", "fcc", a=3.6, cubic=True).write(structure)
    result = CliRunner().invoke(app, ["validate", str(folder), "--structure", str(structure),
                                      "--oracle", "emt", "--output", str(tmp_path / "out"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    stored = json.loads((tmp_path / "out" / RESULT_FILE).read_text())
    assert stored["passed"] and stored["eos_oracle"] is not None


def test_cli_exit_codes_and_messages(copper_fit, tmp_path):
    _, _, folder = copper_fit
    runner = CliRunner()
    missing = runner.invoke(app, ["validate", str(folder)])
    assert missing.exit_code == 2 and "--structure" in missing.output
    not_a_potential = runner.invoke(app, ["validate", str(tmp_path)])
    assert not_a_potential.exit_code == 2 and "potential.json" in not_a_potential.output
    bcc = tmp_path / "bcc.cif"
    bulk("Cu", "bcc", a=2.87).write(bcc)
    failing = runner.invoke(app, ["validate", str(folder), "--structure", str(bcc),
                                  "--output", str(tmp_path / "bcc"), "--no-progress"])
    assert failing.exit_code == 1 and "FAIL" in failing.output
    wrong = tmp_path / "nacl.cif"
    bulk("NaCl", "rocksalt", a=5.6).write(wrong)
    foreign = runner.invoke(app, ["validate", str(folder), "--structure", str(wrong)])
    assert foreign.exit_code == 2 and "--structure" in foreign.output and "Cl" in foreign.output


def test_report_names_the_composition_as_chemists_write_it():
    rutile = crystal(["Ti", "O"], basis=[(0, 0, 0), (0.305, 0.305, 0)], spacegroup=136,
                     cellpar=[4.59, 4.59, 2.96, 90, 90, 90])
    assert rutile.get_chemical_formula() == "O4Ti2"  # ASE's default, what the title showed
    assert (reduced_formula(rutile), cell_formula(rutile)) == ("TiO2", "Ti2O4")
    summary = StructureSummary(formula=cell_formula(rutile), origin="rutile", n_atoms=6,
                               cell_parameters=[4.59, 4.59, 2.96, 90, 90, 90], volume_change=0.0,
                               max_gamma=1.0)
    bare = ValidationResult(potential="p", created="now", seconds=1.0, passed=True, checks=[],
                            structure=summary)
    assert "<h1>Validation of Ti2O4</h1>" in render(bare)  # validation.json of older versions
    titled = render(bare.model_copy(update={"composition": "TiO2"}))
    assert "<title>pyacemaker validation: TiO2</title>" in titled
    assert "<h1>Validation of TiO2</h1>" in titled and "O4Ti2" not in titled
    assert summary_table(bare.model_copy(update={"composition": "TiO2"})).title.startswith(
        "validation of TiO2")
