"""VASP oracle. No VASP binary can be installed here, so these tests use stand-ins and say so:
fake POTCAR files (VASP's are licensed), a real VASP output file shipped with ASE's test data
(vasprun.xml of diamond carbon), and small Python scripts in place of the VASP executable."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import ase
import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from pyacemaker.config import config_from_dict
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.vasp import VaspOracle, classify_failure, read_results
from pyacemaker.resolve import resolve

VASPRUN = Path(ase.__file__).parent / "test/testdata/vasp/vasprun_pstress.xml"  # real VASP output


def fake_potcars(root: Path, *names: str) -> Path:
    """A stand-in POTCAR tree (potpaw_PBE/<name>/POTCAR)."""
    for name in names:
        folder = root / "potpaw_PBE" / name
        folder.mkdir(parents=True)
        (folder / "POTCAR").write_text(f"  PAW_PBE {name} 05Jan2001\n  ZVAL = 4.0\n  TITEL = "
                                       f"PAW_PBE {name} 05Jan2001\n End of Dataset\n")
    return root


def vasp_config(tmp_path, composition="Si", command="true", **vasp):
    pp = fake_potcars(tmp_path / "pp", "Si", "C")
    raw = {"composition": composition, "workdir": str(tmp_path / "run"),
           "oracle": {"engine": "vasp", "vasp": {"command": command, "pp_path": str(pp), **vasp}}}
    return resolve(config_from_dict(raw))


def stand_in_vasp(script: str) -> str:
    """A command running ``script`` with this Python, in place of the VASP binary."""
    return shlex.join([sys.executable, "-c", script])


def test_inputs_are_written_from_the_settings(tmp_path):
    oracle = VaspOracle(vasp_config(tmp_path).oracle, tmp_path / "dft")
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.02, seed=1)
    for rung in (0, 3):
        folder = tmp_path / f"rung{rung}"
        folder.mkdir()
        oracle.write_inputs(atoms, folder, oracle.inputs(atoms, rung))
        incar = dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", (folder / "INCAR").read_text(), re.M))
        assert float(incar["ENCUT"]) == 520 and float(incar["KSPACING"]) == 0.4  # a semiconductor
        assert incar["ISMEAR"] == "0" and incar["LWAVE"] == ".FALSE."
        assert int(incar["NELM"]) == (100 if rung == 0 else 300)
        assert float(incar["SIGMA"]) == pytest.approx(0.05 * (1 if rung == 0 else 5))
        assert "PAW_PBE Si 05Jan2001" in (folder / "POTCAR").read_text()
        poscar = read(folder / "POSCAR", format="vasp")
        np.testing.assert_allclose(poscar.get_scaled_positions(), atoms.get_scaled_positions(),
                                   atol=1e-7)


def test_real_vasp_output_is_parsed_in_our_units(tmp_path):
    (tmp_path / "vasprun.xml").write_text(VASPRUN.read_text())
    result = read_results(tmp_path)
    assert result.failure is None
    free_energies = re.findall(r'name="e_fr_energy">\s*(\S+)', VASPRUN.read_text())
    # the last SCF step's free energy; the run's closing block adds PSTRESS * V (an enthalpy)
    assert result.energy == pytest.approx(float(free_energies[-2]), abs=1e-6)  # eV
    assert abs(float(free_energies[-1]) - result.energy) > 1e-3
    assert np.array(result.forces).shape == (2, 3)
    # 1 kB = 0.1 GPa; VASP prints pressure as positive under compression, ASE stress is negative
    stress_kb = re.search(r'<varray name="stress" >\s*<v>\s*(\S+)', VASPRUN.read_text())
    assert result.stress[0] == pytest.approx(-float(stress_kb[1]) * 0.1 / 160.21766, rel=1e-4)


def test_failures_are_classified(tmp_path):
    (tmp_path / "OUTCAR").write_text("  aborting loop EDIFF was not reached (unconverged)\n")
    assert classify_failure(tmp_path) == "SCF not converged"
    (tmp_path / "OUTCAR").write_text("")
    (tmp_path / "vasp.out").write_text(" ZBRENT: fatal error in bracketing\n")
    assert classify_failure(tmp_path) == "VASP error: ZBRENT: fatal error in bracketing"


def test_ladder_quarantines_a_structure_vasp_cannot_do(tmp_path):
    failing = stand_in_vasp("print(' ZBRENT: fatal error in bracketing'); raise SystemExit(1)")
    config = vasp_config(tmp_path, command=failing)
    result = VaspOracle(config.oracle, tmp_path / "dft").label(bulk("Si", "diamond", a=5.43))
    assert not result.ok and "quarantined after 4 attempts" in result.reason
    assert [a["failure"] for a in result.settings["attempts"]] == [
        "VASP error: ZBRENT: fatal error in bracketing"] * 4


def test_a_run_that_succeeds_after_a_failure_is_labelled(tmp_path):
    # the stand-in fails while NELM is 100 (rung 0) and then writes the real vasprun.xml
    script = (f"import pathlib, shutil; incar = pathlib.Path('INCAR').read_text()\n"
              f"if 'NELM = 100' in incar:\n"
              f"    pathlib.Path('OUTCAR').write_text('aborting loop EDIFF was not reached "
              f"(unconverged)')\n"
              f"else:\n    shutil.copy({str(VASPRUN)!r}, 'vasprun.xml')")
    config = vasp_config(tmp_path, composition="C", command=stand_in_vasp(script))
    result = VaspOracle(config.oracle, tmp_path / "dft").label(bulk("C", "diamond", a=3.57))
    assert result.ok, result.reason
    assert [a["failure"] for a in result.settings["attempts"]] == ["SCF not converged", None]
    assert result.settings["incar"]["nelm"] == 200


def test_missing_potcar_or_binary_fails_at_start_up(tmp_path):
    with pytest.raises(ConfigError, match=r"oracle.vasp.pp_path.*no POTCAR for O"):
        vasp_config(tmp_path, composition="SiO2")
    with pytest.raises(ConfigError, match=r"oracle.vasp.command.*vasp_std"):
        vasp_config(tmp_path / "b", command="vasp_std")
