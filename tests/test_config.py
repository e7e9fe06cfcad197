"""Bad configuration fails at start-up with one message naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.config import check_resumable
from pyacemaker.errors import ConfigError
from pyacemaker.resolve import load_config

MINIMAL = {"composition": "TiO2", "workdir": "runs/tio2", "oracle": {"engine": "tblite"}}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def with_(**changes) -> dict:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return data


def test_minimal_config_resolves_inferred_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, MINIMAL))
    assert config.elements == ["O", "Ti"]
    assert config.workdir == tmp_path / "runs/tio2"
    assert config.oracle.method == "GFN1-xTB"
    assert config.trainer.cutoff == "auto" and 4.5 <= config.trainer.nominal_cutoff(config.elements) <= 7.0
    assert 0 < config.trainer.zbl_inner < config.trainer.zbl_outer < 1.5
    assert config.budget.max_labels == 200


BAD = {
    "unknown top-level key": (with_(budgett={"max_labels": 3}), ["budgett", "did you mean 'budget'"]),
    "unknown nested key": (with_(budget__max_label=3), ["budget.max_label", "max_labels"]),
    "wrong type": (with_(budget__max_labels="many"), ["budget.max_labels", "integer"]),
    "out of range": (with_(targets__energy_rmse_mev_per_atom=-1), ["targets.energy_rmse_mev_per_atom"]),
    "unknown element": (with_(composition="TiXx2"), ["composition", "Xx"]),
    "malformed formula": (with_(composition="Ti-O2"), ["composition", "e.g. TiO2"]),
    "zero count": (with_(composition="Ti0O2"), ["composition", "count of 0"]),
    "too many elements": (with_(composition="LiNaKRbCs"), ["composition", "at most 4"]),
    "missing field": ({"composition": "Cu", "oracle": {"engine": "emt"}}, ["workdir", "runs/tio2"]),
    "unknown engine": (with_(oracle__engine="gaussian"), ["oracle.engine", "ase:<module>:<Class>"]),
    "vasp without POTCARs": (with_(oracle__engine="vasp", oracle__vasp={"command": "true", "pp_path": "."}),
                             ["oracle.vasp.pp_path", "no POTCAR for O"]),
    "emt cannot label": (with_(oracle__engine="emt"), ["oracle.engine", "Ti", "tblite"]),
    "missing seed file": (with_(seeds__files=["nope.cif"]), ["seeds.files.0", "nope.cif", "not found"]),
    "zbl range": (with_(trainer__zbl_inner=1.0, trainer__zbl_outer=0.8), ["trainer.zbl_inner"]),
    "gamma thresholds": (with_(exploration__gamma_collect=30), ["exploration.gamma_collect"]),
    "unknown provider": (with_(executor={"kind": "parsl", "provider": "lsf"}),
                         ["executor.provider", "'local', 'slurm' or 'pbspro'"]),
    "walltime format": (with_(executor={"kind": "parsl", "provider": "slurm", "walltime": "4h"}),
                        ["executor", "walltime '4h' is not HH:MM:SS"]),
    "partition on pbs": (with_(executor={"kind": "parsl", "provider": "pbspro", "partition": "x"}),
                         ["executor", "'partition' is a slurm setting"]),
    "cluster without parsl": (with_(executor={"provider": "slurm"}),
                              ["executor", "provider 'slurm' needs kind: parsl"]),
    "no qsub here": (with_(executor={"kind": "parsl", "provider": "pbspro"}),
                     ["executor.provider", "pbspro needs `qsub` on PATH", "login node"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_names_field_and_fix(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, expected = BAD[case]
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    for text in expected:
        assert text in str(err.value), f"{text!r} missing from: {err.value}"


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("composition: [TiO2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="pyacemaker init"):
        load_config(tmp_path / "absent.yaml")


def test_cli_reports_config_error_without_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(write(tmp_path, with_(budget__max_labels="x")))])
    assert result.exit_code == 2
    assert "budget.max_labels" in result.output
    assert "Traceback" not in result.output


def test_init_writes_a_config_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init", "SrTiO3"])
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "config.yaml")
    assert config.composition == "SrTiO3" and config.workdir == tmp_path / "runs/srtio3"
    again = CliRunner().invoke(app, ["init", "SrTiO3"])
    assert again.exit_code == 2 and "--force" in again.output
    bad = CliRunner().invoke(app, ["init", "Qq2"])
    assert bad.exit_code == 2 and "composition" in bad.output


def test_resume_refuses_changed_physics_but_allows_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored = load_config(write(tmp_path, MINIMAL))
    check_resumable(stored, load_config(write(tmp_path, with_(budget__max_labels=500))))
    moved = with_(executor={"kind": "parsl", "provider": "slurm", "partition": "big"})
    check_resumable(stored, load_config(write(tmp_path, moved)))  # a run may move to a cluster
    with pytest.raises(ConfigError, match="exploration.md_steps"):
        check_resumable(stored, load_config(write(tmp_path, with_(exploration__md_steps=5))))


def test_unknown_prototype_names_the_available_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, with_(seeds__prototypes=["perovskite"])))
    assert "seeds.prototypes" in str(err.value) and "rutile, fluorite" in str(err.value)
    config = load_config(write(tmp_path, with_(seeds__prototypes=["rutile"])))
    assert config.seeds.prototypes == ["rutile"]


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[1] / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_examples_load(example, monkeypatch):
    """Every shipped example validates (its engine's own checks included), from the repository's
    root as the examples say (their structure files are relative to it)."""
    monkeypatch.chdir(example.parents[1])
    config = load_config(example)
    assert config.composition and config.oracle.engine
