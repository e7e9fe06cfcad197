"""Fuzzing (hypothesis, bounded and derandomized so CI is reproducible) of what users give
pyacemaker: the config file and structure files. Every input gets a valid result or a
PyacemakerError naming the field or the file, never another exception (a traceback).

The regular tests at the end pin the crashes the fuzzing found."""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.spacegroup import crystal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from pyacemaker.cli import app
from pyacemaker.config import Config
from pyacemaker.errors import ConfigError, PyacemakerError
from pyacemaker.resolve import load_config
from pyacemaker.structures.seeds import read_structure_file
from pyacemaker.validation.run import read_test_structure

# Bounded for CI: derandomized (the same examples every run), no per-example deadline.
# PYACEMAKER_FUZZ_EXAMPLES=5000 PYACEMAKER_FUZZ_RANDOM=1 searches longer, with fresh examples.
EXAMPLES = int(os.environ.get("PYACEMAKER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("PYACEMAKER_FUZZ_RANDOM"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
BASE: dict[str, Any] = {
    "composition": "TiO2", "workdir": "runs/tio2", "oracle": {"engine": "tblite"},
    "budget": {"max_iterations": 2, "max_labels": 40},
    "seeds": {"prototypes": ["rutile"], "max_atoms": 24},
    "exploration": {"md_temperatures": [300.0, 900.0], "rare_events": {"when": "never"}},
    "trainer": {"cutoff": 5.0},
    "validation": {"every_iteration": False},
}


def field_paths(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every dotted field of the config, sub-models included (``oracle.dft.command``, ...)."""
    out = []
    for name, field in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out.extend(field_paths(field.annotation, f"{prefix}{name}."))
    return out


FIELDS = field_paths()


def names_field_or_file(message: str, path: Path) -> bool:
    """The message says where the problem is: the config file, or a config field."""
    return str(path) in message or bool(re.search(r"field '[^']+'", message)) or any(
        re.search(rf"(^|\W){re.escape(f)}\b", message) for f in FIELDS if "." in f)


def assert_loads_or_fails_clearly(path: Path) -> Config | None:
    """``load_config(path)``: a Config, or a ConfigError naming the field or the file."""
    try:
        return load_config(path)
    except PyacemakerError as err:
        message = str(err)
        assert message.strip(), "empty error message"
        assert names_field_or_file(message, path), f"names neither field nor file: {message}"
        assert len(message) < 5000, f"a {len(message)}-character message"
        return None


# ------------------------------------------------------------------------------ strategies

WEIRD_TEXT = ["", " ", "Xx2", "TiO-2", "Ti0O2", "TiO₂", "tio2", "Ti O2", "Ti(O2)", "H1000000",
              "ase:os:system", "ase:nope:X", "ase:ase.calculators.emt:EMT", "emt", "chgnet", "vasp",
              "gaussian", "'", '"', "a; touch /tmp/x", "$(id)", "../../etc", "/", "\x00", "\n",
              "ünïcødé", "🙂", "01:00:00", "4h", "never", "always", "eon", "slurm", "parsl"]
WEIRD_NUMBERS = [0, -1, 1, 2, 5, 10**30, -(10**30), 0.5, 1e-300, 1e308, -0.0,
                 math.nan, math.inf, -math.inf]
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from(WEIRD_TEXT) | st.sampled_from(WEIRD_NUMBERS))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | st.sampled_from(FIELDS), inner,
                                        max_size=4), max_leaves=12)


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _drop(data: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(last, None)


@st.composite
def mutated_configs(draw) -> dict:
    """The valid ``BASE`` with one to three fields dropped, replaced by values of any type, or
    unknown keys added (``oracle.engine`` never becomes espresso: its start-up may run pw.x)."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELDS) | st.text(min_size=1, max_size=12))
        action = draw(st.sampled_from(["drop", "set", "set", "nest"]))
        if action == "drop":
            _drop(data, field)
        elif action == "set":
            _set(data, field, draw(values))
        else:
            _set(data, f"{field}.{draw(st.sampled_from(FIELDS))}", draw(scalars))
    engine = data.get("oracle", {}).get("engine") if isinstance(data.get("oracle"), dict) else None
    if engine == "espresso":
        data["oracle"]["engine"] = "tblite"
    return data


# ------------------------------------------------------------------------------ config fuzzing

@FUZZ
@given(document=st.binary(max_size=200) | st.text(max_size=200)
       | values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)))
def test_any_document_loads_or_fails_clearly(document):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
            path.write_text(document, encoding="utf-8", errors="surrogatepass")
        assert_loads_or_fails_clearly(path)


@FUZZ
@given(data=mutated_configs())
def test_mutated_config_loads_or_fails_clearly(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        config = assert_loads_or_fails_clearly(path)
        if config is not None:
            assert config.workdir.is_absolute() and config.trainer.nominal_cutoff(config.elements) > 2


class _NoLoop:
    """Stands in for the Workflow so that `pyacemaker run` stops after loading the config."""

    def __init__(self, settings, **_):
        self.stop_reason = "not run (fuzz test)"

    def run(self):
        return self


@settings(FUZZ, max_examples=max(1, EXAMPLES // 3))
@given(data=mutated_configs())
def test_cli_run_exits_with_a_message_not_a_traceback(data, monkeypatch):
    monkeypatch.setattr("pyacemaker.orchestrator.Workflow", _NoLoop)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        result = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    if result.exit_code == 2:
        assert "error:" in result.output
    else:
        assert "not run (fuzz test)" in result.output


# ------------------------------------------------------------------------------ structure files

COMPOSITION = {"Ti": 1, "O": 2}
EXTENSIONS = ["", ".cif", ".vasp", ".extxyz", ".xyz", ".traj", ".json", ".db", ".txt", ".pdb"]


def rutile() -> Atoms:
    return crystal(["Ti", "O"], basis=[(0, 0, 0), (0.3, 0.3, 0.0)], spacegroup=136,
                   cellpar=[4.6, 4.6, 2.96, 90, 90, 90])


def valid_files() -> dict[str, str]:
    """Rutile TiO2 written by ASE as extxyz, POSCAR and cif."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in (("rutile.extxyz", "extxyz"), ("POSCAR", "vasp"), ("rutile.cif", "cif")):
            ase.io.write(Path(tmp) / name, rutile(), format=fmt)
            out[name] = (Path(tmp) / name).read_text()
    return out


VALID = valid_files()
TOKENS = ["nan", "inf", "-inf", "0", "0.0", "1e300", "-1", "X", "Xx", "Fe", "", "#", "\x00",
          "T", "F", "'", "Lattice=", "1e-6", "99999999"]


@st.composite
def mutated_files(draw) -> tuple[str, str]:
    """(file name, text): a valid file with tokens replaced, lines dropped or doubled, or cut."""
    name = draw(st.sampled_from(sorted(VALID)))
    lines = VALID[name].splitlines()
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["token", "token", "drop", "double", "cut"]))
        if action == "token":
            words = lines[k].split(" ")
            i = draw(st.integers(0, len(words) - 1))
            words[i] = draw(st.sampled_from(TOKENS) | st.text(max_size=6))
            lines[k] = " ".join(words)
        elif action == "drop":
            del lines[k]
        elif action == "double":
            lines.insert(k, lines[k])
        else:
            lines = lines[:k]
        if not lines:
            break
    return name, "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def assert_reads_or_fails_clearly(path: Path) -> None:
    """The seed reader and the `validate --structure` reader: structures, or a ConfigError
    naming the file, and fast (a thin cell once made the distance check take minutes)."""
    start = time.perf_counter()
    for read in (lambda: read_structure_file(path, COMPOSITION, "seeds.files.0"),
                 lambda: [("test", read_test_structure(path, ["O", "Ti"], "--structure"))]):
        try:
            structures = read()
        except ConfigError as err:
            assert str(path) in str(err), f"does not name the file: {err}"
        else:
            assert structures and all(isinstance(a, Atoms) and len(a) > 0 for _, a in structures)
            assert all(np.all(np.isfinite(a.positions)) and a.cell.volume > 0 for _, a in structures)
    assert time.perf_counter() - start < 10


@FUZZ
@given(content=st.binary(max_size=300), suffix=st.sampled_from(EXTENSIONS))
def test_random_bytes_as_structure_file(content, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"structure{suffix}"
        path.write_bytes(content)
        assert_reads_or_fails_clearly(path)


@FUZZ
@given(file=mutated_files())
def test_mutated_structure_file(file):
    name, text = file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        assert_reads_or_fails_clearly(path)


lengths = st.floats(-12, 12) | st.sampled_from([0.0, 1e-8, 1e-3, 0.5, 1e6, math.nan, math.inf])


@FUZZ
@given(cell=st.lists(lengths, min_size=9, max_size=9),
       fractions=st.lists(st.floats(0, 1), min_size=0, max_size=24),
       symbols=st.lists(st.sampled_from(["Ti", "O", "Fe", "X", "H"]), min_size=8, max_size=8),
       pbc=st.booleans(), fmt=st.sampled_from(["extxyz", "vasp", "cif"]))
def test_generated_structures(cell, fractions, symbols, pbc, fmt):
    """Cells of any shape (zero volume, thin, NaN), overlapping atoms, foreign elements."""
    n = len(fractions) // 3
    matrix = np.array(cell).reshape(3, 3)
    atoms = Atoms(symbols[:n], cell=matrix, pbc=pbc,
                  positions=np.array(fractions[:3 * n]).reshape(n, 3) @ np.nan_to_num(matrix))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"generated.{fmt}"
        try:
            ase.io.write(path, atoms, format=fmt)
        except Exception:  # noqa: BLE001 - ASE cannot write it: nothing a user could give
            return
        assert_reads_or_fails_clearly(path)


# ------------------------------------------------------------------------------ regressions
# Each case crashed with a traceback, hung, or was accepted and failed later in the run.

def _with(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        _set(data, dotted.replace("__", "."), value)
    return data


CONFIG_REGRESSIONS = {
    "NUL in a path (ValueError)": (_with(workdir="runs/\x00x"), ["workdir", "NUL"]),
    "NUL in a command (crash at run time)": (
        _with(dynamics__lammps_command="lmp\x00"), ["dynamics.lammps_command", "NUL"]),
    "infinite cutoff (accepted)": (_with(trainer__cutoff=math.inf), ["trainer.cutoff", "finite"]),
    "infinite cell width (accepted)": (_with(seeds__min_cell_width=math.inf),
                                       ["seeds.min_cell_width", "finite"]),
    "NaN/negative MD temperature (accepted)": (_with(exploration__md_temperatures=[math.nan, -5]),
                                               ["exploration.md_temperatures.0", "finite",
                                                "md_temperatures.1", "greater than 0"]),
    "negative random seed (numpy error at run time)": (_with(exploration__random_seed=-1),
                                                       ["exploration.random_seed"]),
    "empty workdir (ran in the current folder)": (_with(workdir=""), ["workdir", "empty"]),
    "not a calculator (accepted; called with the parameters)": (
        _with(oracle__engine="ase:os:system"), ["oracle.engine", "not an ASE calculator"]),
    "missing calculator module (accepted; failed at the first label)": (
        _with(oracle__engine="ase:no_such_module:Calc"), ["oracle.engine", "cannot import"]),
    "relative module name (accepted)": (_with(oracle__engine="ase:.x:Y"), ["oracle.engine"]),
    "missing validation.structure (failed after the first fit)": (
        _with(validation__structure="absent.cif"), ["validation.structure", "not found"]),
    "line break in a batch-script value": (
        _with(executor={"kind": "parsl", "provider": "slurm", "partition": "x\nrm -rf ~"}),
        ["executor.partition", "one word"]),
    "command substitution in worker_dir": (
        _with(executor={"kind": "parsl", "provider": "slurm", "worker_dir": "/tmp/$(id)"}),
        ["executor.worker_dir", "$( )"]),
}


@pytest.mark.parametrize("case", CONFIG_REGRESSIONS)
def test_config_regression(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, expected = CONFIG_REGRESSIONS[case]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for text in expected:
        assert text in str(err.value), f"{text!r} missing from: {err.value}"


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ncomposition: *a{levels - 1}\nworkdir: w\noracle: {{engine: emt}}\n"


FILE_REGRESSIONS = {
    "not UTF-8 (UnicodeDecodeError)": ("composition: Ti\xe9\n".encode("latin-1"), "not UTF-8"),
    "nested 5000 deep (RecursionError)": (
        ("composition: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
    "aliases expanding to 10^9 values (message of gigabytes)": (_alias_bomb(9).encode(),
                                                                "more than 100000 values"),
}


@pytest.mark.parametrize("case", FILE_REGRESSIONS)
def test_config_file_regression(case, tmp_path):
    content, expected = FILE_REGRESSIONS[case]
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)
    assert time.perf_counter() - start < 10


def _extxyz(lattice: str, lines: list[str]) -> str:
    return (f'{len(lines)}\nLattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            + "".join(f"{line}\n" for line in lines))


RUTILE_LINES = ["Ti 0 0 0", "O 1.38 1.38 0", "O 3.22 3.22 0"]
STRUCTURE_REGRESSIONS = {
    "no atoms (ValueError)": (_extxyz("4.6 0 0 0 4.6 0 0 0 3", []), "holds no atoms"),
    "NaN position (accepted)": (_extxyz("4.6 0 0 0 4.6 0 0 0 3", ["Ti nan 0 0", *RUTILE_LINES[1:]]),
                                "NaN or infinite"),
    "NaN cell (LinAlgError)": (_extxyz("nan 0 0 0 4.6 0 0 0 3", RUTILE_LINES), "NaN or infinite"),
    "collinear lattice vectors (LinAlgError)": (_extxyz("4.6 0 0 4.6 0 0 0 0 3", RUTILE_LINES),
                                                "no periodic 3D cell"),
    "cell 1e-4 A thin (hung for minutes)": (_extxyz("1e-4 0 0 0 4.6 0 0 0 3", RUTILE_LINES),
                                            "wide"),
    "nearly collinear vectors (hung for minutes)": (
        _extxyz("4.6 0 0 4.6 1e-6 0 0 0 3", RUTILE_LINES), "wide"),
    "POSCAR scale factor 99999999 (ValueError in ASE's neighbour list)": (
        _extxyz("4.6e8 0 0 0 4.6e8 0 0 0 3e8", RUTILE_LINES), "check the units"),
}


@pytest.mark.parametrize("case", STRUCTURE_REGRESSIONS)
def test_structure_file_regression(case, tmp_path):
    text, expected = STRUCTURE_REGRESSIONS[case]
    path = tmp_path / "seed.extxyz"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        read_structure_file(path, COMPOSITION, "seeds.files.0")
    assert expected in str(err.value) and str(path) in str(err.value), str(err.value)
    assert time.perf_counter() - start < 5


def test_valid_structure_files_still_read(tmp_path):
    for name, text in VALID.items():
        (tmp_path / name).write_text(text)
        [(origin, atoms)] = read_structure_file(tmp_path / name, COMPOSITION, "seeds.files.0")
        assert origin == f"file:{name}" and len(atoms) == 6
