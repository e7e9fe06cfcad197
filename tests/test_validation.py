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
from ase.units import GPa
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.config import TargetsConfig, ValidationConfig
from pyacemaker.training.potential import Potential
from pyacemaker.validation.report import REPORT_FILE, RESULT_FILE, write_report
from pyacemaker.validation.validate import ValidationResult, validate


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


def broken_copy(potential: Potential, folder, scale: float) -> Potential:
    """The potential with every ACE coefficient multiplied by ``scale`` (a deliberately broken
    fit: same files, wrong energies)."""
    shutil.copytree(potential.folder, folder)
    data = yaml.safe_load((folder / "potential.yaml").read_text())
    for block in data["species"]:
        for function in block["nbody"]:
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
    assert overall.stress_rmse is None  # the EMT labels of the fixture carry no stress


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


def test_report_files_round_trip(cu_result, tmp_path):
    path = write_report(cu_result, tmp_path)
    assert path == tmp_path / REPORT_FILE
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 4  # parity, error vs gamma, EOS, phonons
    assert "PASS" in html and "http" not in html.replace("http-equiv", "")
    stored = ValidationResult.model_validate_json((tmp_path / RESULT_FILE).read_text())
    assert stored.passed and stored.eos.b0_gpa == cu_result.eos.b0_gpa


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
