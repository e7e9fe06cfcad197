"""The oracle engine registry: one entry per engine, read by validation, help texts, the
resolve step and the factories; config.py names no engine and imports no engine code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pyacemaker.config
from pyacemaker.cli import app
from pyacemaker.config import OracleConfig, check_resumable, config_from_dict
from pyacemaker.errors import ConfigError
from pyacemaker.oracle.registry import (
    ENGINES,
    _load,
    engine_names,
    find_engine,
    recorded_settings,
    resolve_oracle,
)


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_has_its_code_and_help(name, tmp_path, monkeypatch):
    engine = ENGINES[name]
    for reference in (engine.factory, engine.calculator, engine.resolver):
        assert reference is None or callable(_load(reference)), reference
    assert engine.section is None or engine.section in OracleConfig.model_fields
    assert all(option in OracleConfig.model_fields for option in engine.options)
    assert engine.description and "\n" not in engine.description
    assert name in engine_names()
    with pytest.raises(ConfigError) as err:
        find_engine("no-such-engine")
    assert engine.description in str(err.value)  # the error for an unknown engine is its help
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["init", "Cu"]).exit_code == 0
    assert engine.description in Path("config.yaml").read_text()  # the template's comment


def test_lookup_and_the_cheap_engines():
    assert find_engine("ase:ase.calculators.emt:EMT") is ENGINES["ase:<module>:<Class>"]
    assert [e.name for e in ENGINES.values() if not e.cheap] == ["espresso", "vasp"]
    assert engine_names(cheap_only=True) == "emt, tblite, chgnet or ase:<module>:<Class>"
    for bad in ("gaussian", "ase:ase.calculators.emt", "ase", "tblit"):
        with pytest.raises(ConfigError, match="oracle.engine.*unknown engine") as err:
            find_engine(bad)
        assert all(name in str(err.value) for name in ENGINES)
    with pytest.raises(ConfigError, match="did you mean 'tblite'"):
        find_engine("tblit")


def test_options_of_other_engines_are_refused():
    with pytest.raises(ConfigError, match=r"oracle.method': only tblite has methods"):
        resolve_oracle(OracleConfig(engine="emt", method="GFN2-xTB"), ["Cu"])
    assert resolve_oracle(OracleConfig(engine="tblite"), ["Cu"]).method == "GFN1-xTB"


def test_labels_record_only_their_engines_section():
    assert {"dft", "vasp"}.isdisjoint(recorded_settings(OracleConfig(engine="emt")))
    espresso = recorded_settings(OracleConfig(engine="espresso"))
    assert "dft" in espresso and "vasp" not in espresso and "workers" not in espresso


def test_resume_ignores_how_engines_run_on_this_machine(tmp_path):
    raw = {"composition": "Si", "workdir": str(tmp_path), "oracle": {"engine": "espresso"}}
    stored = config_from_dict(raw)
    here = config_from_dict(raw | {"oracle": {"engine": "espresso", "workers": 8, "dft": {
        "command": "srun pw.x", "pseudo_dir": "/elsewhere", "timeout_s": 60}}})
    check_resumable(stored, here)
    with pytest.raises(ConfigError, match="oracle.dft.ecutwfc"):
        check_resumable(stored, config_from_dict(raw | {"oracle": {"engine": "espresso",
                                                                   "dft": {"ecutwfc": 50}}}))


def test_config_imports_no_engine_or_structure_code():
    """Layers point one way: oracle and structures read config, never the reverse (function-local
    imports included)."""
    tree = ast.parse(Path(pyacemaker.config.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith(("pyacemaker.oracle", "pyacemaker.structures"))]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]  # no relative
    assert "pyacemaker.composition" in imported  # the walk sees our imports
